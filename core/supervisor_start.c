// SPDX-License-Identifier: MIT
/*
 * supervisor_start.c - `luadivert run` from start to end: lock the queue,
 * map the shared region, open the queue socket, start the first worker
 * (core/supervisor.c runs the event loop), bind the queue and install the
 * rules once the policy is up, and at the end remove the rules, release
 * what no worker released, drain and unbind the queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "metrics_http.h"
#include "observe_cli.h"
#include "offload.h"
#include "pidfile.h"
#include "rules_swap.h"
#include "rules_foreign.h"
#include "supervisor_priv.h"

static int epoll_in(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return fd < 0 ? 0 : epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Issue 18: install the rules the first worker's policy declares (it wrote
 * them into the shared region before V), merged with the command line
 * (policy_rules.h: the policy wins, field by field).
 */
static int start_rules(struct super *s)
{
	const struct ld_super_cfg *cfg = s->cfg;
	const struct ld_policy_rules *decl = &s->lanes[0].sh->decl;
	struct ld_rules_set *set;
	char err[LD_RULES_FILTER_MAX + 1200], what[LD_RULES_FILTER_MAX + 128];

	/* issue 16: with --no-rules, the user's rules are those of `rules print` */
	LANES(s, l)
		l->sh->offload_gen = cfg->w.no_offload ? 0 : LD_OFFLOAD_GEN_FIRST;
	if (!cfg->rules) {
		if (decl->declared)
			ld_log("queue %u: %s declares divert rules; --no-rules: not installing them",
			       cfg->w.nfq.queue, cfg->w.policy);
		return 0;
	}
	if (ld_divert_plan(&s->divert, decl, &set, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		return -1;
	}
	ld_rules_warn_foreign(s->divert.cmdline.queue, s->divert.cmdline.backend);
	if (ld_divert_install(&s->divert, set, err, sizeof(err)) < 0) {
		ld_log("installing the divert rules: %s", err);
		free(set);
		return -1;
	}
	s->rules_on = 1;
	LANES(s, l)
		l->sh->offload_gen = set->cfg.offload_gen;
	ld_log("queue %u: diverting %s%s", cfg->w.nfq.queue,
	       ld_rules_set_describe(set, what, sizeof(what)),
	       decl->declared ? " (as the policy declares)" : "");
	return 0;
}

/* The first worker loaded the policy: bind the queue, install the rules. */
int ld_sup_go_live(struct super *s)
{
	const struct ld_super_cfg *cfg = s->cfg;
	char err[1024];

	LANES(s, l) {
		if (ld_nfq_bind(&l->nfq, err, sizeof(err)) < 0) {
			ld_log("%s", err);
			goto fail;
		}
	}
	if (start_rules(s) < 0)
		goto fail;
	/* issue 14: --watch watches the modules the worker reported */
	ld_reload_watch_list(&s->reload, s->lanes[0].sh->modules);
	if (ld_pidfile_write(cfg->pidfile, cfg->w.nfq.queue) < 0)
		ld_log("warning: pid file %s: %s (luadivert reload will not find us)",
		       cfg->pidfile, strerror(errno));
	/* issue 13: `luadivert stats --queue N` finds the endpoint next to the pid file */
	if (cfg->w.obs.metrics_addr) {
		snprintf(s->metrics_file, sizeof(s->metrics_file), "%s.metrics", cfg->pidfile);
		if (ld_write_text_file(s->metrics_file, cfg->w.obs.metrics_addr) < 0)
			ld_log("warning: %s: %s (luadivert stats needs --metrics ADDR)",
			       s->metrics_file, strerror(errno));
		ld_log("queue %u: metrics on http://%s/metrics", cfg->w.nfq.queue,
		       cfg->w.obs.metrics_addr);
	}
	snprintf(s->status, sizeof(s->status), "%s.status", cfg->pidfile);
	ld_reload_set_status_file(&s->reload, s->status);
	ld_obs_tick(s->obs, ld_now_ns());   /* issue 13: the report's time 0 */
	s->started = 1;
	if (s->nlanes == 1)
		ld_log("queue %u: running %s (pid %ld, worker %ld)", cfg->w.nfq.queue, cfg->w.policy,
		       (long)getpid(), (long)s->lanes[0].cur.pid);
	else
		LANES(s, l)
			ld_log("queue %u: running %s (pid %ld, worker %ld of %u, CPU %d)", l->queue,
			       cfg->w.policy, (long)getpid(), (long)l->cur.pid, s->nlanes, l->cpu);
	if (!cfg->w.sandbox.disabled)
		ld_log("queue %u: the worker runs the policy as user %s with CAP_NET_ADMIN and "
		       "CAP_NET_RAW only, NoNewPrivs, seccomp (docs/sandbox.md)", cfg->w.nfq.queue,
		       cfg->w.sandbox.user);
	else
		ld_log("queue %u: --no-sandbox: the policy runs as root with every capability",
		       cfg->w.nfq.queue);
	return 0;
fail:
	s->failed = 1;
	ld_sup_begin_stop(s);
	LANES(s, l)
		ld_sup_kill(&l->cur, K_ABORT);
	return -1;
}

/* Signals are read from a signalfd by the event loop, never handled async. */
static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int setup(struct super *s, char *err, size_t errlen)
{
	const struct ld_super_cfg *cfg = s->cfg;
	struct ld_nfq_cfg qcfg = cfg->w.nfq;
	struct itimerspec tick = { { 0, TICK_MS * MS }, { 0, TICK_MS * MS } };

	/* Held packets stay in the kernel queue: make room for them. */
	if (cfg->w.hold_max && qcfg.maxlen < cfg->w.hold_max + LD_QUEUE_HEADROOM)
		qcfg.maxlen = cfg->w.hold_max + LD_QUEUE_HEADROOM;
	/* issue 16: per lane (queue) its own region and socket */
	LANES(s, l) {
		l->sh = ld_shared_create(cfg->w.hold_max, cfg->w.hold_copies, cfg->w.hold_bytes,
					 LD_STATE_MAX_DEFAULT);
		if (!l->sh) {
			snprintf(err, errlen, "shared memory: %s", strerror(errno));
			return -1;
		}
		l->restarts = calloc(cfg->max_restarts ? cfg->max_restarts : 1,
				     sizeof(*l->restarts));
		if (!l->restarts) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		qcfg.queue = l->queue;
		if (ld_nfq_socket(&l->nfq, &qcfg, LD_BATCH_MAX * 2, &l->sh->c, &l->lim, err,
				  errlen) < 0)
			return -1;
	}
	if (ld_reload_init(&s->reload, cfg->w.policy, cfg->w.watch, err, errlen) < 0)
		return -1;
	/*
	 * Issue 13 with worker processes (docs/process.md): the supervisor
	 * serves /metrics, owns the --record files (its writer thread drains
	 * the ring the serving worker fills) and writes --report, all from the
	 * shared counters and metrics table. So they outlive any one worker,
	 * and the sandboxed worker needs no socket or file of its own.
	 */
	s->tables = mmap(NULL, sizeof(*s->tables), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->tables == MAP_FAILED) {
		s->tables = NULL;
		snprintf(err, errlen, "metrics table: %s", strerror(errno));
		return -1;
	}
	{
		struct ld_obs_cfg ocfg = cfg->w.obs;

		ocfg.tables = s->tables;
		/* with --workers N > 1 none of them is given (run.c): lane 0's counters */
		s->obs = ld_obs_new(&ocfg, cfg->w.nfq.queue, cfg->w.nfq.default_verdict,
				    &s->lanes[0].sh->c, err, errlen);
		if (!s->obs)
			return -1;
	}
	LANES(s, l) {
		l->wcfg = cfg->w;
		l->wcfg.nfq.queue = l->queue;
		l->wcfg.obs = (struct ld_obs_cfg){ .worker = 1, .record = ld_obs_record(s->obs),
						   .tables = s->tables,
						   .record_path = cfg->w.obs.record_path };
		if (!l->idx)
			continue;
		/* issue 16: lanes past the first get a metrics table of their own
		 * (two workers must not fill the same slots); /metrics shows each
		 * queue with its label */
		l->tables = mmap(NULL, sizeof(*l->tables), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (l->tables == MAP_FAILED) {
			l->tables = NULL;
			snprintf(err, errlen, "metrics table: %s", strerror(errno));
			return -1;
		}
		l->wcfg.obs.tables = l->tables;
		if (ld_obs_add_queue(s->obs, l->queue, &l->sh->c, l->tables) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->epfd < 0 || s->tickfd < 0 || timerfd_settime(s->tickfd, 0, &tick, NULL) < 0 ||
	    epoll_in(s->epfd, s->sigfd) < 0 || epoll_in(s->epfd, s->tickfd) < 0 ||
	    epoll_in(s->epfd, s->reload.watch_fd) < 0 ||
	    (ld_obs_fd(s->obs) >= 0 && epoll_in(s->epfd, ld_obs_fd(s->obs)) < 0)) {
		snprintf(err, errlen, "epoll/timerfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Everything the workers left: rules, held packets, the queue, the files. */
static void finish(struct super *s)
{
	const struct ld_super_cfg *cfg = s->cfg;
	struct ld_kernel_counters k;
	char err[LD_RULES_FILTER_MAX + 1200];
	unsigned nbound = 0;
	/* issue 16: with offload rules, unhook first and remove once the queues
	 * are empty (policy_rules.h: else the kernel drops what is queued) */
	int later = s->rules_on && ld_divert_unhook(&s->divert, err, sizeof(err)) == 0;

	if (s->rules_on && !later && ld_rules_remove(cfg->rules, err, sizeof(err)) < 0) {
		ld_log("removing the divert rules: %s (`luadivert rules cleanup --queue %u` "
		       "removes them)", err, cfg->w.nfq.queue);
		s->failed = 1;
	}
	LANES(s, l) {
		if (l->sh) {
			/* a worker that was killed could not release its held packets */
			if (l->sh->heap.n)
				ld_shared_send_copies(l->sh, cfg->w.held_on_exit == LD_HELD_DROP);
			if (l->nfq.nl && l->sh->heap.n)
				ld_shared_release_all(l->sh, &l->nfq,
						      cfg->w.held_on_exit == LD_HELD_DROP);
			if (l->sh->seen_any && !l->nfq.seen_any) {
				l->nfq.last_id = l->sh->last_id;
				l->nfq.seen_any = 1;
			}
		}
		if (l->nfq.nl) {
			int bound = l->nfq.bound;

			/* The queue's kernel counters vanish with it: read them first. */
			ld_kernel_counters_read(l->queue, &k);
			ld_nfq_close(&l->nfq, cfg->w.nfq.default_verdict);
			ld_log_limit_flush(&l->lim);
			if (bound)
				ld_counters_print(stderr, l->queue, &l->sh->c, &k);
			nbound += bound;
		}
	}
	if (nbound == s->nlanes)
		ld_lanes_print_total(s, 0);   /* issue 16: N > 1 only */
	if (later && ld_rules_remove(cfg->rules, err, sizeof(err)) < 0) {
		ld_log("removing the divert rules: %s (`luadivert rules cleanup --queue %u` "
		       "removes them)", err, cfg->w.nfq.queue);
		s->failed = 1;
	}
	if (s->started) {
		unlink(cfg->pidfile);
		unlink(s->status);
	}
	if (s->metrics_file[0])
		unlink(s->metrics_file);
	if (s->obs) {
		/* no worker is left: the record's ring has its last packet; what
		 * the queue's close swept was never recorded */
		char title[PATH_MAX + 32];

		if (s->nlanes && s->lanes[0].sh)
			ld_obs_settle(s->obs, s->lanes[0].sh->c.received);
		snprintf(title, sizeof(title), "luadivert run %s, queue %u", cfg->w.policy,
			 cfg->w.nfq.queue);
		if (ld_obs_free(s->obs, ld_now_ns(), title) < 0)
			s->failed = 1;
	}
	free(s->next_set);
	ld_divert_free(&s->divert);
	if (s->tables)
		munmap(s->tables, sizeof(*s->tables));
	ld_reload_free(&s->reload);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tickfd >= 0)
		close(s->tickfd);
}

int ld_supervise(const struct ld_super_cfg *cfg)
{
	struct super s = { .cfg = cfg, .epfd = -1, .tickfd = -1 };
	char err[1024];
	int rc, gave_up = 0;

	s.reload.watch_fd = -1;
	if (cfg->rules)
		s.divert.cmdline = *cfg->rules;
	else
		ld_rules_cfg_init(&s.divert.cmdline, cfg->w.nfq.queue);
	s.divert.given = cfg->given;
	s.usr1_at = ld_now_ns();
	s.sigfd = block_signals();
	if (s.sigfd < 0) {
		ld_log("signalfd: %s", strerror(errno));
		return LD_EXIT_FAIL;
	}
	/* one luadivert per queue; on this failure the rules are the other's */
	if (ld_lanes_new(&s, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		close(s.sigfd);
		return LD_EXIT_FAIL;
	}
	if (ld_sup_check_policy(&s, err, sizeof(err)) < 0 || setup(&s, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		s.failed = 1;
	} else {
		/* every lane's first worker loads the policy; the queues are bound
		 * once all of them said V (first_valid() in supervisor.c) */
		LANES(&s, l) {
			if (ld_sup_spawn(&s, l, &l->cur, 1, cfg->init_timeout_ms) < 0) {
				s.failed = 1;
				ld_sup_begin_stop(&s);
				break;
			}
		}
		if (ld_sup_loop(&s) < 0) {
			s.failed = 1;
			LANES(&s, l) {
				ld_sup_kill(&l->cur, K_ABORT);
				ld_sup_kill(&l->nxt, K_ABORT);
			}
			while (waitpid(-1, NULL, 0) > 0)
				;
		}
	}
	finish(&s);
	LANES(&s, l)
		gave_up |= l->fallback;
	ld_lanes_free(&s);
	close(s.sigfd);
	if (s.failed)
		rc = LD_EXIT_FAIL;
	else if (s.stop_killed)
		rc = LD_EXIT_STOP_KILLED;
	else if (gave_up)
		rc = LD_EXIT_GAVE_UP;
	else
		rc = LD_EXIT_OK;
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * supervisor.c - `luadivert run`: start, watch, replace and stop workers.
 *
 * One event loop (epoll) over the signalfd, a 20 ms tick for deadlines,
 * inotify (--watch) and the workers' control sockets (protocol: worker.h).
 * Every state change of a worker happens here, so the rules are simple:
 * at most one serving worker ("cur") and one reload candidate ("nxt");
 * a worker is only ever killed with SIGKILL and only ever reaped here, and
 * after a serving worker is reaped the shared region is recovered before
 * anything else touches the queue.
 */
#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "reload.h"
#include "shared_state.h"
#include "worker_proc.h"

enum { TICK_MS = 20, MS = 1000000 };

enum wstate {
	W_NONE,      /* no process */
	W_LOADING,   /* forked: loading the policy and running init, until V */
	W_STATE,     /* L sent: running on_reload, until Y */
	W_READY,     /* validated (and on_reload done): waits for G */
	W_SERVING,   /* G sent: it owns the queue */
	W_SAVING,    /* S sent: save(), until P */
	W_PAUSED,    /* saved; waits for R or H */
	W_LEAVING,   /* H sent: exits, leaving held packets to the successor */
	W_STOPPING,  /* Q sent: releases held packets, on_stop, exits */
};

enum why_killed {
	K_NONE,
	K_HANG,      /* a batch past --handler-timeout */
	K_DEADLINE,  /* no answer in time (init, save, on_reload, handover) */
	K_STOP,      /* past --stop-timeout */
	K_ABORT,     /* not needed any more (a candidate, a worker still loading) */
};

struct wproc {
	pid_t pid;
	int ctl;
	enum wstate state;
	uint64_t deadline_ns;   /* for the reply the state waits for; 0 = none */
	enum why_killed killed;
	int with_policy;
};

struct super {
	const struct ld_super_cfg *cfg;
	struct ld_shared *sh;
	struct ld_nfq nfq;
	struct ld_log_limit lim;
	struct ld_reload reload;
	struct wproc cur, nxt;
	int sigfd, tickfd, epfd;
	int lock_fd;
	int started;              /* the first worker took the queue */
	int rules_on;
	int fallback;             /* the policy was given up on */
	int stopping;
	int stop_killed;
	int failed;               /* exit 1 */
	uint64_t stop_deadline_ns;
	uint64_t reload_t0_ns, reload_hash;
	uint64_t *restarts;       /* ring of restart times, max_restarts long */
	uint32_t nrestarts;
	char status[PATH_MAX + 8];
};

static const char *verdict_name(uint32_t v)
{
	return v == LD_DROP ? "drop" : "pass";
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d%s", WEXITSTATUS(status),
			 WEXITSTATUS(status) == LD_WEXIT_OK ? "" : " (os.exit in the policy?)");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with status 0x%x", (unsigned)status);
}

static void tell(struct wproc *w, char m)
{
	if (w->ctl >= 0 && send(w->ctl, &m, 1, MSG_NOSIGNAL) != 1)
		ld_log("telling worker %ld '%c': %s", (long)w->pid, m, strerror(errno));
}

/* A command a serving worker must see between two batches, not after 16. */
static void tell_serving(struct super *s, struct wproc *w, char m)
{
	__atomic_store_n(&s->sh->yield, 1, __ATOMIC_RELEASE);
	tell(w, m);
}

static void kill_worker(struct wproc *w, enum why_killed why)
{
	if (w->pid > 0 && w->killed == K_NONE) {
		w->killed = why;
		kill(w->pid, SIGKILL);
	}
}

static void close_ctl(struct super *s, struct wproc *w)
{
	if (w->ctl >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->ctl, NULL);
		close(w->ctl);
		w->ctl = -1;
	}
}

static int spawn(struct super *s, struct wproc *w, int with_policy, uint32_t deadline_ms)
{
	struct epoll_event ev = { .events = EPOLLIN };
	pid_t me = getpid(), pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ld_log("worker control socket: %s", strerror(errno));
		return -1;
	}
	s->sh->err[0] = '\0';
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ld_log("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(ld_worker_process(&s->cfg->w, s->sh, &s->nfq, sv[1], with_policy, me));
	}
	close(sv[1]);
	*w = (struct wproc){ .pid = pid, .ctl = sv[0], .state = W_LOADING,
			     .deadline_ns = ld_now_ns() + (uint64_t)deadline_ms * MS,
			     .with_policy = with_policy };
	ev.data.fd = w->ctl;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->ctl, &ev) < 0) {
		ld_log("epoll_ctl: %s", strerror(errno));
		kill_worker(w, K_DEADLINE);
		return -1;
	}
	return 0;
}

static void reload_done(struct super *s, int ok, const char *why)
{
	char msg[PATH_MAX + LD_SHARED_ERR_MAX + 128];

	if (ok)
		snprintf(msg, sizeof(msg), "reloaded %s (fnv64 %016" PRIx64 ") in %.2f ms",
			 s->cfg->w.policy, s->reload_hash,
			 (double)(ld_now_ns() - s->reload_t0_ns) / 1e6);
	else
		snprintf(msg, sizeof(msg), "%s has errors, not reloading: %s", s->cfg->w.policy, why);
	ld_reload_report(&s->reload, ok, msg, &s->sh->c);
}

static void start_reload(struct super *s)
{
	ld_reload_begin(&s->reload);
	s->reload_t0_ns = ld_now_ns();
	if (ld_file_hash(s->cfg->w.policy, &s->reload_hash) < 0) {
		reload_done(s, 0, strerror(errno));
		return;
	}
	if (spawn(s, &s->nxt, 1, s->cfg->reload_timeout_ms) < 0)
		reload_done(s, 0, "could not start a worker for it");
}

/* Start a worker again after a hang or a crash, or give up on the policy. */
static void restart(struct super *s)
{
	uint64_t now = ld_now_ns(), window = (uint64_t)s->cfg->restart_window_s * 1000 * MS;
	uint32_t recent = 0, max = s->cfg->max_restarts;

	for (uint32_t i = 0; i < s->nrestarts && i < max; i++)
		if (now - s->restarts[i] < window)
			recent++;
	if (!s->fallback && recent >= max) {
		s->fallback = 1;
		s->sh->c.gave_up = 1;
		ld_log("queue %u: giving up on %s: %u restarts within %u s; every packet gets "
		       "the default verdict (%s) until a reload succeeds or luadivert stops",
		       s->cfg->w.nfq.queue, s->cfg->w.policy, recent, s->cfg->restart_window_s,
		       verdict_name(s->cfg->w.nfq.default_verdict));
	}
	if (!s->fallback) {
		if (max)
			s->restarts[s->nrestarts++ % max] = now;
		s->sh->c.worker_restarts++;
	}
	if (spawn(s, &s->cur, !s->fallback, s->cfg->init_timeout_ms) < 0) {
		ld_log("queue %u: no worker can be started: stopping", s->cfg->w.nfq.queue);
		s->failed = 1;
		s->stopping = 1;
	}
}

/* The serving worker is gone: verdict what it had, then replace it. */
static void cur_gone(struct super *s, int status)
{
	struct wproc *w = &s->cur;
	enum wstate was = w->state;
	enum why_killed why = w->killed;
	char how[128];
	uint32_t given;

	close_ctl(s, w);
	w->pid = 0;
	w->state = W_NONE;
	given = ld_shared_recover(s->sh, &s->nfq, s->cfg->w.nfq.default_verdict);
	if (!s->started) {
		/* the first worker never served: the policy cannot start */
		if (why == K_DEADLINE)
			ld_log("%s: loading the policy and running init took longer than %u ms "
			       "(--init-timeout): the worker was killed", s->cfg->w.policy,
			       s->cfg->init_timeout_ms);
		else if (s->sh->err[0])
			ld_log("%s", s->sh->err);
		else if (why != K_STOP && why != K_ABORT) {
			describe(status, how, sizeof(how));
			ld_log("%s: the worker %s while loading the policy", s->cfg->w.policy, how);
		}
		/* a signal before the policy was up is a stop, not a failure */
		if (!(s->stopping && why == K_ABORT))
			s->failed = 1;
		s->stopping = 1;
		return;
	}
	if (s->stopping) {
		if (why == K_STOP) {
			s->stop_killed = 1;
			ld_log("queue %u: the worker did not stop within %u ms (--stop-timeout): "
			       "killed; %u packets in hand got the default verdict (%s)",
			       s->cfg->w.nfq.queue, s->cfg->stop_timeout_ms, given,
			       verdict_name(s->cfg->w.nfq.default_verdict));
		}
		return;
	}
	if (was == W_LEAVING && s->nxt.state == W_READY) {
		/* handover: the successor takes the queue and the held packets */
		s->cur = s->nxt;
		s->nxt = (struct wproc){ .ctl = -1 };
		s->cur.state = W_SERVING;
		s->cur.deadline_ns = 0;
		tell(&s->cur, LD_CTL_GO);
		if (s->cur.with_policy && s->fallback) {
			/* a reload brought a policy back: its restarts count afresh */
			s->fallback = 0;
			s->nrestarts = 0;
			ld_log("queue %u: the policy runs again", s->cfg->w.nfq.queue);
		}
		reload_done(s, 1, NULL);
		return;
	}
	if (why == K_HANG) {
		s->sh->c.worker_hangs++;
		ld_log("queue %u: the policy ran one batch for more than %u ms (--handler-timeout): "
		       "worker killed, %u packets in hand got the default verdict (%s)",
		       s->cfg->w.nfq.queue, s->cfg->handler_timeout_ms, given,
		       verdict_name(s->cfg->w.nfq.default_verdict));
	} else if (why == K_DEADLINE) {
		s->sh->c.worker_hangs++;
		ld_log("queue %u: %s: the worker was killed", s->cfg->w.nfq.queue,
		       was == W_LOADING ? "loading the policy and init took longer than "
					  "--init-timeout after a restart"
		       : was == W_SAVING ? "save() took longer than --reload-timeout"
					 : "the worker did not hand over within --stop-timeout");
	} else {
		s->sh->c.worker_crashes++;
		describe(status, how, sizeof(how));
		ld_log("queue %u: the worker %s; %u packets in hand got the default verdict (%s)%s%s",
		       s->cfg->w.nfq.queue, how, given, verdict_name(s->cfg->w.nfq.default_verdict),
		       s->sh->err[0] ? ": " : "", s->sh->err);
	}
	if (s->nxt.pid > 0) {
		kill_worker(&s->nxt, K_ABORT);
		reload_done(s, 0, "the running worker died during the reload");
	}
	restart(s);
}

static void nxt_gone(struct super *s, int status)
{
	struct wproc *w = &s->nxt;
	char how[128];
	enum why_killed why = w->killed;

	close_ctl(s, w);
	*w = (struct wproc){ .ctl = -1 };
	if (why == K_ABORT)
		return;   /* reported by whoever killed it */
	if (why == K_DEADLINE)
		snprintf(how, sizeof(how), "it did not load, init and take over within %u ms "
			 "(--reload-timeout); the new worker was killed", s->cfg->reload_timeout_ms);
	else if (s->sh->err[0])
		snprintf(how, sizeof(how), "%.120s", s->sh->err);
	else
		describe(status, how, sizeof(how));
	reload_done(s, 0, s->sh->err[0] && why == K_NONE ? s->sh->err : how);
	if (s->cur.state == W_SAVING || s->cur.state == W_PAUSED) {
		s->cur.state = W_SERVING;
		s->cur.deadline_ns = 0;
		tell(&s->cur, LD_CTL_RESUME);
	}
}

static void reap(struct super *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == s->cur.pid)
			cur_gone(s, status);
		else if (pid == s->nxt.pid)
			nxt_gone(s, status);
	}
}

static int go_live(struct super *s);

/* A message on a worker's control socket. */
static void on_ctl(struct super *s, struct wproc *w)
{
	char m;
	ssize_t n = recv(w->ctl, &m, 1, MSG_DONTWAIT);

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			close_ctl(s, w);   /* it is dying: SIGCHLD follows */
		return;
	}
	if (w->killed != K_NONE)
		return;   /* said before it was killed */
	if (w == &s->cur && m == LD_CTL_VALID && w->state == W_LOADING) {
		if (!s->started && go_live(s) < 0)
			return;
		w->state = W_SERVING;
		w->deadline_ns = 0;
		tell(w, LD_CTL_GO);
	} else if (w == &s->nxt && m == LD_CTL_VALID && w->state == W_LOADING &&
		   s->cur.state == W_SERVING) {
		/* validated: the running one saves and pauses */
		s->cur.state = W_SAVING;
		s->cur.deadline_ns = w->deadline_ns;
		tell_serving(s, &s->cur, LD_CTL_SAVE);
	} else if (w == &s->cur && w->state == W_SAVING && m == LD_CTL_SAVED) {
		w->state = W_PAUSED;
		w->deadline_ns = 0;
		s->nxt.state = W_STATE;
		tell(&s->nxt, LD_CTL_STATE);
	} else if (w == &s->cur && w->state == W_SAVING && m == LD_CTL_SAVE_FAILED) {
		reload_done(s, 0, s->sh->err);
		kill_worker(&s->nxt, K_ABORT);
		w->state = W_SERVING;
		w->deadline_ns = 0;
		tell(w, LD_CTL_RESUME);
	} else if (w == &s->nxt && w->state == W_STATE && m == LD_CTL_READY) {
		w->state = W_READY;
		s->cur.state = W_LEAVING;
		s->cur.deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
		tell(&s->cur, LD_CTL_HANDOVER);
	}
}

static void begin_stop(struct super *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
	if (s->nxt.pid > 0) {
		kill_worker(&s->nxt, K_ABORT);
		reload_done(s, 0, "luadivert is stopping");
	}
	if (s->cur.pid <= 0)
		return;
	if (s->cur.state == W_SERVING || s->cur.state == W_SAVING || s->cur.state == W_PAUSED) {
		s->cur.state = W_STOPPING;
		tell_serving(s, &s->cur, LD_CTL_QUIT);
	} else if (s->cur.state != W_STOPPING && s->cur.state != W_LEAVING) {
		kill_worker(&s->cur, K_ABORT);   /* still loading: nothing in hand */
	}
}

static void print_counters(struct super *s)
{
	struct ld_kernel_counters k;

	ld_kernel_counters_read(s->cfg->w.nfq.queue, &k);
	ld_counters_print(stderr, s->cfg->w.nfq.queue, &s->sh->c, &k);
}

static void on_signals(struct super *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			begin_stop(s);
			break;
		case SIGHUP:
			s->reload.pending = 1;
			break;
		case SIGUSR1:
			print_counters(s);
			break;
		case SIGCHLD:
			reap(s);
			break;
		default:
			break;
		}
	}
}

static void on_tick(struct super *s)
{
	uint64_t now = ld_now_ns(), busy = __atomic_load_n(&s->sh->busy_since_ns, __ATOMIC_ACQUIRE);
	uint64_t ticks;

	if (read(s->tickfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		ld_log_limited(&s->lim, "tick: %s", strerror(errno));
	if (s->cur.pid > 0 && s->sh->phase == LD_PHASE_BATCH && busy &&
	    now - busy > (uint64_t)s->cfg->handler_timeout_ms * MS &&
	    (s->cur.state == W_SERVING || s->cur.state == W_STOPPING ||
	     s->cur.state == W_SAVING || s->cur.state == W_LEAVING) && !s->stopping)
		kill_worker(&s->cur, K_HANG);
	if (s->cur.pid > 0 && s->cur.deadline_ns && now > s->cur.deadline_ns && !s->stopping)
		kill_worker(&s->cur, K_DEADLINE);
	if (s->nxt.pid > 0 && s->nxt.deadline_ns && now > s->nxt.deadline_ns)
		kill_worker(&s->nxt, K_DEADLINE);
	if (s->stopping && now > s->stop_deadline_ns && s->cur.pid > 0)
		kill_worker(&s->cur, K_STOP);
	if (s->reload.pending && !s->stopping && s->nxt.pid <= 0 && s->cur.state == W_SERVING)
		start_reload(s);
}

static int epoll_in(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return fd < 0 ? 0 : epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Create the pid file's directory if needed, then write our pid. */
static int write_pidfile(const char *path)
{
	char dir[PATH_MAX];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", path);
	if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST)
		return -1;
	f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f);
}

/* The first worker loaded the policy: bind the queue, install the rules. */
static int go_live(struct super *s)
{
	const struct ld_super_cfg *cfg = s->cfg;
	char err[1024];

	if (ld_nfq_bind(&s->nfq, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		goto fail;
	}
	if (cfg->rules) {
		char names[64];

		if (ld_rules_install(cfg->rules, err, sizeof(err)) < 0) {
			ld_log("installing the divert rules: %s", err);
			goto fail;
		}
		s->rules_on = 1;
		ld_log("queue %u: diverting %s at %s%s", cfg->w.nfq.queue,
		       cfg->rules->filter && cfg->rules->filter[0] ? cfg->rules->filter
								   : "every packet",
		       ld_rules_hook_names(cfg->rules->hooks, names, sizeof(names)),
		       cfg->rules->fail_closed ? " (fail-closed)" : "");
	}
	if (write_pidfile(cfg->pidfile) < 0)
		ld_log("warning: pid file %s: %s (luadivert reload will not find us)",
		       cfg->pidfile, strerror(errno));
	snprintf(s->status, sizeof(s->status), "%s.status", cfg->pidfile);
	ld_reload_set_status_file(&s->reload, s->status);
	s->started = 1;
	ld_log("queue %u: running %s (pid %ld, worker %ld)", cfg->w.nfq.queue, cfg->w.policy,
	       (long)getpid(), (long)s->cur.pid);
	return 0;
fail:
	s->failed = 1;
	begin_stop(s);
	kill_worker(&s->cur, K_ABORT);
	return -1;
}

static int loop(struct super *s)
{
	struct epoll_event evs[8];

	while (!(s->stopping && s->cur.pid <= 0 && s->nxt.pid <= 0)) {
		int n = epoll_wait(s->epfd, evs, 8, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ld_log("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == s->sigfd)
				on_signals(s);
			else if (fd == s->tickfd)
				on_tick(s);
			else if (fd == s->reload.watch_fd)
				ld_reload_watch_event(&s->reload);
			else if (fd == s->cur.ctl)
				on_ctl(s, &s->cur);
			else if (fd == s->nxt.ctl)
				on_ctl(s, &s->nxt);
		}
	}
	return 0;
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

	s->sh = ld_shared_create(cfg->w.hold_max, cfg->w.hold_copies, LD_STATE_MAX_DEFAULT);
	if (!s->sh) {
		snprintf(err, errlen, "shared memory: %s", strerror(errno));
		return -1;
	}
	s->restarts = calloc(cfg->max_restarts ? cfg->max_restarts : 1, sizeof(*s->restarts));
	if (!s->restarts) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Held packets stay in the kernel queue: make room for them. */
	if (cfg->w.hold_max && qcfg.maxlen < cfg->w.hold_max + LD_QUEUE_HEADROOM)
		qcfg.maxlen = cfg->w.hold_max + LD_QUEUE_HEADROOM;
	if (ld_nfq_socket(&s->nfq, &qcfg, LD_BATCH_MAX * 2, &s->sh->c, &s->lim, err, errlen) < 0)
		return -1;
	if (ld_reload_init(&s->reload, cfg->w.policy, cfg->w.watch, err, errlen) < 0)
		return -1;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->epfd < 0 || s->tickfd < 0 || timerfd_settime(s->tickfd, 0, &tick, NULL) < 0 ||
	    epoll_in(s->epfd, s->sigfd) < 0 || epoll_in(s->epfd, s->tickfd) < 0 ||
	    epoll_in(s->epfd, s->reload.watch_fd) < 0) {
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
	char err[1024];

	if (s->rules_on && ld_rules_remove(cfg->rules, err, sizeof(err)) < 0) {
		ld_log("removing the divert rules: %s (`luadivert rules cleanup --queue %u` "
		       "removes them)", err, cfg->w.nfq.queue);
		s->failed = 1;
	}
	if (s->sh) {
		/* a worker that was killed could not release its held packets */
		if (s->nfq.nl && s->sh->heap.n)
			ld_shared_release_all(s->sh, &s->nfq, cfg->w.held_on_exit == LD_HELD_DROP);
		if (s->sh->seen_any && !s->nfq.seen_any) {
			s->nfq.last_id = s->sh->last_id;
			s->nfq.seen_any = 1;
		}
	}
	if (s->nfq.nl) {
		int bound = s->nfq.bound;

		/* The queue's kernel counters vanish with it: read them first. */
		ld_kernel_counters_read(cfg->w.nfq.queue, &k);
		ld_nfq_close(&s->nfq, cfg->w.nfq.default_verdict);
		ld_log_limit_flush(&s->lim);
		if (bound)
			ld_counters_print(stderr, cfg->w.nfq.queue, &s->sh->c, &k);
	}
	if (s->started) {
		unlink(cfg->pidfile);
		unlink(s->status);
	}
	ld_reload_free(&s->reload);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tickfd >= 0)
		close(s->tickfd);
	free(s->restarts);
	ld_shared_destroy(s->sh);
}

int ld_supervise(const struct ld_super_cfg *cfg)
{
	struct super s = { .cfg = cfg, .epfd = -1, .tickfd = -1, .lock_fd = -1,
			   .cur = { .ctl = -1 }, .nxt = { .ctl = -1 } };
	char err[1024];
	int rc;

	s.reload.watch_fd = -1;
	s.nfq.fd = -1;
	s.sigfd = block_signals();
	if (s.sigfd < 0) {
		ld_log("signalfd: %s", strerror(errno));
		return LD_EXIT_FAIL;
	}
	/* one luadivert per queue; on this failure the rules are the other's */
	s.lock_fd = ld_rules_lock(cfg->w.nfq.queue, err, sizeof(err));
	if (s.lock_fd < 0) {
		ld_log("%s", err);
		close(s.sigfd);
		return LD_EXIT_FAIL;
	}
	if (setup(&s, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		s.failed = 1;
	} else if (spawn(&s, &s.cur, 1, cfg->init_timeout_ms) < 0) {
		s.failed = 1;
	} else if (loop(&s) < 0) {
		s.failed = 1;
		kill_worker(&s.cur, K_ABORT);
		kill_worker(&s.nxt, K_ABORT);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	finish(&s);
	ld_rules_unlock(s.lock_fd, cfg->w.nfq.queue);
	close(s.sigfd);
	if (s.failed)
		rc = LD_EXIT_FAIL;
	else if (s.stop_killed)
		rc = LD_EXIT_STOP_KILLED;
	else if (s.fallback)
		rc = LD_EXIT_GAVE_UP;
	else
		rc = LD_EXIT_OK;
	return rc;
}

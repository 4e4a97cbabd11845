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
#include "supervisor_priv.h"

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
#include "rules_swap.h"
#include "shared_state.h"
#include "worker_proc.h"

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

void ld_sup_kill(struct wproc *w, enum why_killed why)
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

int ld_sup_spawn(struct super *s, struct wproc *w, int with_policy, uint32_t deadline_ms)
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
		_exit(ld_worker_process(&s->wcfg, s->sh, &s->nfq, sv[1], with_policy, me));
	}
	close(sv[1]);
	*w = (struct wproc){ .pid = pid, .ctl = sv[0], .state = W_LOADING,
			     .deadline_ns = ld_now_ns() + (uint64_t)deadline_ms * MS,
			     .with_policy = with_policy };
	ev.data.fd = w->ctl;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->ctl, &ev) < 0) {
		ld_log("epoll_ctl: %s", strerror(errno));
		ld_sup_kill(w, K_DEADLINE);
		return -1;
	}
	return 0;
}

int ld_sup_check_policy(const struct super *s, char *err, size_t errlen)
{
	struct ld_lua_cfg lcfg = { .policy = s->cfg->w.policy, .lua_dir = s->cfg->w.lua_dir,
				   .allow_insecure = s->cfg->allow_insecure };

	/* as the supervisor's user (root), before the worker drops to its own */
	return ld_lua_check_files(&lcfg, geteuid(), err, errlen);
}

static void reload_done(struct super *s, int ok, const char *why)
{
	char msg[PATH_MAX + LD_SHARED_ERR_MAX + LD_RULES_FILTER_MAX + 1400];

	if (ok)
		snprintf(msg, sizeof(msg), "reloaded %s (fnv64 %016" PRIx64 ") in %.2f ms%s",
			 s->cfg->w.policy, s->reload_hash,
			 (double)(ld_now_ns() - s->reload_t0_ns) / 1e6, s->reload_note);
	else if (why && why[0] == '!')   /* a whole message */
		snprintf(msg, sizeof(msg), "%s", why + 1);
	else
		snprintf(msg, sizeof(msg), "%s has errors, not reloading: %s", s->cfg->w.policy, why);
	ld_reload_report(&s->reload, ok, msg, &s->sh->c);
	s->reload_note[0] = '\0';
}

static void start_reload(struct super *s)
{
	char err[LD_SHARED_ERR_MAX];

	ld_reload_begin(&s->reload);
	s->reload_t0_ns = ld_now_ns();
	if (ld_file_hash(s->cfg->w.policy, &s->reload_hash) < 0) {
		reload_done(s, 0, strerror(errno));
		return;
	}
	if (ld_sup_check_policy(s, err, sizeof(err)) < 0) {
		reload_done(s, 0, err);
		return;
	}
	if (ld_sup_spawn(s, &s->nxt, 1, s->cfg->reload_timeout_ms) < 0)
		reload_done(s, 0, "could not start a worker for it");
}

/* Start a worker again after a hang or a crash, or give up on the policy. */
static void restart(struct super *s)
{
	uint64_t now = ld_now_ns(), window = (uint64_t)s->cfg->restart_window_s * 1000 * MS;
	uint32_t recent = 0, max = s->cfg->max_restarts;
	char err[LD_SHARED_ERR_MAX];

	for (uint32_t i = 0; i < s->nrestarts && i < max; i++)
		if (now - s->restarts[i] < window)
			recent++;
	/* the new worker reads the policy file again: it must still be safe */
	if (!s->fallback && ld_sup_check_policy(s, err, sizeof(err)) < 0) {
		s->fallback = 1;
		s->sh->c.gave_up = 1;
		ld_log("queue %u: not restarting the policy: %s; every packet gets the default "
		       "verdict (%s) until a reload succeeds or luadivert stops",
		       s->cfg->w.nfq.queue, err, verdict_name(s->cfg->w.nfq.default_verdict));
	}
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
	if (ld_sup_spawn(s, &s->cur, !s->fallback, s->cfg->init_timeout_ms) < 0) {
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
	/* a batch is recorded after its verdicts: one in hand never was */
	if (s->sh->phase == LD_PHASE_BATCH || s->sh->phase == LD_PHASE_SEND)
		ld_obs_missed(s->obs, s->sh->inhand_n < LD_BATCH_MAX ? s->sh->inhand_n :
				      LD_BATCH_MAX);
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
		/* issue 14: on_stop raised (logged by the worker): exit status 1 */
		if (why == K_NONE && WIFEXITED(status) && WEXITSTATUS(status) == LD_WEXIT_POLICY)
			s->failed = 1;
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
		ld_reload_watch_list(&s->reload, s->sh->modules);   /* issue 14 */
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
		ld_sup_kill(&s->nxt, K_ABORT);
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

/*
 * Issue 18 across processes: the new worker wrote the rules its policy
 * declares into the shared region before V; compile them now, before
 * anything changes. A filter that does not compile refuses the reload.
 */
static int plan_reload_rules(struct super *s)
{
	char err[LD_RULES_FILTER_MAX + 1200];

	free(s->next_set);
	s->next_set = NULL;
	if (!s->rules_on)
		return 0;   /* --no-rules */
	if (ld_divert_plan(&s->divert, &s->sh->decl, &s->next_set, err, sizeof(err)) < 0) {
		ld_sup_kill(&s->nxt, K_ABORT);
		reload_done(s, 0, err);
		return -1;
	}
	return 0;
}

/*
 * The new worker is ready and the old one paused (it reads no packet):
 * swap the rules now, all or nothing, just before the code. Packets the
 * old rules queued and nobody read yet are judged by the new code
 * (docs/reload.md). A failed swap refuses the reload: the old one resumes.
 */
static int swap_reload_rules(struct super *s)
{
	char err[LD_RULES_FILTER_MAX + 1200], what[LD_RULES_FILTER_MAX + 128];
	char msg[PATH_MAX + LD_RULES_FILTER_MAX + 1400];
	int changed = 0;

	if (!s->next_set)
		return 0;
	if (ld_divert_swap(&s->divert, s->next_set, &changed, err, sizeof(err)) < 0) {
		free(s->next_set);
		s->next_set = NULL;
		ld_sup_kill(&s->nxt, K_ABORT);
		snprintf(msg, sizeof(msg), "!%s: not reloading, the divert rules could not be "
			 "swapped (the old policy and rules stay): %s", s->cfg->w.policy, err);
		reload_done(s, 0, msg);
		s->cur.state = W_SERVING;
		s->cur.deadline_ns = 0;
		tell(&s->cur, LD_CTL_RESUME);
		return -1;
	}
	s->next_set = NULL;   /* owned by s->divert now */
	s->sh->offload_gen = s->divert.cur->cfg.offload_gen;   /* issue 16 */
	if (changed)
		snprintf(s->reload_note, sizeof(s->reload_note), "; now diverting %s",
			 ld_rules_set_describe(s->divert.cur, what, sizeof(what)));
	return 0;
}

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
		if (!s->started && ld_sup_go_live(s) < 0)
			return;
		w->state = W_SERVING;
		w->deadline_ns = 0;
		tell(w, LD_CTL_GO);
	} else if (w == &s->nxt && m == LD_CTL_VALID && w->state == W_LOADING &&
		   s->cur.state == W_SERVING) {
		if (plan_reload_rules(s) < 0)
			return;
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
		ld_sup_kill(&s->nxt, K_ABORT);
		w->state = W_SERVING;
		w->deadline_ns = 0;
		tell(w, LD_CTL_RESUME);
	} else if (w == &s->nxt && w->state == W_STATE && m == LD_CTL_READY) {
		if (swap_reload_rules(s) < 0)
			return;
		w->state = W_READY;
		s->cur.state = W_LEAVING;
		s->cur.deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
		tell(&s->cur, LD_CTL_HANDOVER);
	}
}

void ld_sup_begin_stop(struct super *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
	if (s->nxt.pid > 0) {
		ld_sup_kill(&s->nxt, K_ABORT);
		reload_done(s, 0, "luadivert is stopping");
	}
	if (s->cur.pid <= 0)
		return;
	if (s->cur.state == W_SERVING || s->cur.state == W_SAVING || s->cur.state == W_PAUSED) {
		s->cur.state = W_STOPPING;
		tell_serving(s, &s->cur, LD_CTL_QUIT);
	} else if (s->cur.state != W_STOPPING && s->cur.state != W_LEAVING) {
		ld_sup_kill(&s->cur, K_ABORT);   /* still loading: nothing in hand */
	}
}

static void print_counters(struct super *s)
{
	struct ld_kernel_counters k;

	uint64_t now = ld_now_ns();

	ld_kernel_counters_read(s->cfg->w.nfq.queue, &k);
	/* issue 14 item 22: a readable table with rates, then the line scripts parse */
	ld_counters_print_rates(stderr, s->cfg->w.nfq.queue, &s->sh->c, &s->usr1_prev,
				(double)(now - s->usr1_at) / 1e9, &k, &s->usr1_kprev);
	ld_counters_print(stderr, s->cfg->w.nfq.queue, &s->sh->c, &k);
	s->usr1_prev = s->sh->c;
	s->usr1_kprev = k;
	s->usr1_at = now;
}

static void on_signals(struct super *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			ld_sup_begin_stop(s);
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
	if (s->started)
		ld_obs_tick(s->obs, now);   /* issue 13: a --report sample when one is due */
	if (s->cur.pid > 0 && s->sh->phase == LD_PHASE_BATCH && busy &&
	    now - busy > (uint64_t)s->cfg->handler_timeout_ms * MS &&
	    (s->cur.state == W_SERVING || s->cur.state == W_STOPPING ||
	     s->cur.state == W_SAVING || s->cur.state == W_LEAVING) && !s->stopping)
		ld_sup_kill(&s->cur, K_HANG);
	if (s->cur.pid > 0 && s->cur.deadline_ns && now > s->cur.deadline_ns && !s->stopping)
		ld_sup_kill(&s->cur, K_DEADLINE);
	if (s->nxt.pid > 0 && s->nxt.deadline_ns && now > s->nxt.deadline_ns)
		ld_sup_kill(&s->nxt, K_DEADLINE);
	if (s->stopping && now > s->stop_deadline_ns && s->cur.pid > 0)
		ld_sup_kill(&s->cur, K_STOP);
	if (s->reload.pending && !s->stopping && s->nxt.pid <= 0 && s->cur.state == W_SERVING)
		start_reload(s);
}

int ld_sup_loop(struct super *s)
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
			else if (fd == ld_obs_fd(s->obs))
				ld_obs_handle(s->obs);   /* issue 13: GET /metrics */
		}
	}
	return 0;
}

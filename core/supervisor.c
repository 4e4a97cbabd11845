// SPDX-License-Identifier: MIT
/*
 * supervisor.c - `luadivert run`: start, watch, replace and stop workers.
 *
 * One event loop (epoll) over the signalfd, a 20 ms tick for deadlines,
 * inotify (--watch) and the workers' control sockets (protocol: worker.h).
 * Every state change of a worker happens here, so the rules are simple:
 * per lane (one per queue, issue 16) at most one serving worker ("cur") and
 * one reload candidate ("nxt"); a reload runs in every lane at once and
 * swaps none of them until all are ready;
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

/**
 * ld_sup_tell() - send one control message (worker.h) to a worker
 * @w: the worker (nothing if its socket is closed)
 * @m: the message
 */
void ld_sup_tell(struct wproc *w, char m)
{
	if (w->ctl >= 0 && send(w->ctl, &m, 1, MSG_NOSIGNAL) != 1)
		ld_log("telling worker %ld '%c': %s", (long)w->pid, m, strerror(errno));
}

/**
 * ld_sup_tell_serving() - ld_sup_tell() to a serving worker, which must
 * see it between two batches, not after 16 (the yield word of its lane)
 * @l: the worker's lane
 * @w: the worker
 * @m: the message
 */
void ld_sup_tell_serving(struct lane *l, struct wproc *w, char m)
{
	__atomic_store_n(&l->sh->yield, 1, __ATOMIC_RELEASE);
	ld_sup_tell(w, m);
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

int ld_sup_spawn(struct super *s, struct lane *l, struct wproc *w, int with_policy,
		 uint32_t deadline_ms)
{
	struct epoll_event ev = { .events = EPOLLIN };
	pid_t me = getpid(), pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ld_log("worker control socket: %s", strerror(errno));
		return -1;
	}
	l->sh->err[0] = '\0';
	/* no other thread may hold a lock the child would inherit (the record
	 * writer is the supervisor's only other thread) */
	if (ld_record_pause(ld_obs_record(s->obs)) < 0)
		ld_log("--record: the writer did not pause for a fork");
	fflush(NULL);
	pid = fork();
	if (pid != 0)
		ld_record_resume(ld_obs_record(s->obs));
	if (pid < 0) {
		ld_log("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		ld_lane_pin(l);   /* issue 16: before the sandbox (no seccomp rule needed) */
		_exit(ld_worker_process(&l->wcfg, l->sh, &l->nfq, sv[1], with_policy, me));
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

/* Start a lane's worker again after a hang or a crash, or give up on the policy. */
static void restart(struct super *s, struct lane *l)
{
	uint64_t now = ld_now_ns(), window = (uint64_t)s->cfg->restart_window_s * 1000 * MS;
	uint32_t recent = 0, max = s->cfg->max_restarts;
	char err[LD_SHARED_ERR_MAX];

	for (uint32_t i = 0; i < l->nrestarts && i < max; i++)
		if (now - l->restarts[i] < window)
			recent++;
	/* the new worker reads the policy file again: it must still be safe */
	if (!l->fallback && ld_sup_check_policy(s, err, sizeof(err)) < 0) {
		l->fallback = 1;
		l->sh->c.gave_up = 1;
		ld_log("queue %u: not restarting the policy: %s; every packet gets the default "
		       "verdict (%s) until a reload succeeds or luadivert stops",
		       l->queue, err, verdict_name(s->cfg->w.nfq.default_verdict));
	}
	if (!l->fallback && recent >= max) {
		l->fallback = 1;
		l->sh->c.gave_up = 1;
		ld_log("queue %u: giving up on %s: %u restarts within %u s; every packet gets "
		       "the default verdict (%s) until a reload succeeds or luadivert stops",
		       l->queue, s->cfg->w.policy, recent, s->cfg->restart_window_s,
		       verdict_name(s->cfg->w.nfq.default_verdict));
	}
	if (!l->fallback) {
		if (max)
			l->restarts[l->nrestarts++ % max] = now;
		l->sh->c.worker_restarts++;
	}
	if (ld_sup_spawn(s, l, &l->cur, !l->fallback, s->cfg->init_timeout_ms) < 0) {
		ld_log("queue %u: no worker can be started: stopping", l->queue);
		s->failed = 1;
		ld_sup_begin_stop(s);
	}
}

/* A lane's serving worker is gone: verdict what it had, then replace it. */
static void cur_gone(struct super *s, struct lane *l, int status)
{
	struct wproc *w = &l->cur;
	enum wstate was = w->state;
	enum why_killed why = w->killed;
	uint32_t dv = s->cfg->w.nfq.default_verdict;
	char how[128], msg[200];
	uint32_t given;

	close_ctl(s, w);
	w->pid = 0;
	w->state = W_NONE;
	/* a batch is recorded after its verdicts: one in hand never was (the
	 * record is refused with several lanes, so this is lane 0's) */
	ld_obs_settle(s->obs, l->sh->c.received);
	given = ld_shared_recover(l->sh, &l->nfq, dv);
	if (!s->started) {
		/* the first worker never served: the policy cannot start */
		if (why == K_DEADLINE)
			ld_log("%s: loading the policy and running init took longer than %u ms "
			       "(--init-timeout): the worker was killed", s->cfg->w.policy,
			       s->cfg->init_timeout_ms);
		else if (l->sh->err[0])
			ld_log("%s", l->sh->err);
		else if (why != K_STOP && why != K_ABORT) {
			describe(status, how, sizeof(how));
			ld_log("%s: the worker %s while loading the policy", s->cfg->w.policy, how);
		}
		/* a signal before the policy was up is a stop, not a failure */
		if (!(s->stopping && why == K_ABORT))
			s->failed = 1;
		ld_sup_begin_stop(s);   /* the other lanes' first workers go too */
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
			       l->queue, s->cfg->stop_timeout_ms, given, verdict_name(dv));
		}
		return;
	}
	if (was == W_LEAVING && l->nxt.state == W_READY) {
		/* handover: the successor takes the queue and the held packets */
		l->cur = l->nxt;
		l->nxt = (struct wproc){ .ctl = -1 };
		l->cur.state = W_SERVING;
		l->cur.deadline_ns = 0;
		ld_sup_tell(&l->cur, LD_CTL_GO);
		if (l->cur.with_policy && l->fallback) {
			/* a reload brought a policy back: its restarts count afresh */
			l->fallback = 0;
			l->nrestarts = 0;
			ld_log("queue %u: the policy runs again", l->queue);
		}
		ld_sup_reload_maybe_done(s);
		return;
	}
	if (why == K_HANG) {
		l->sh->c.worker_hangs++;
		ld_log("queue %u: the policy ran one batch for more than %u ms (--handler-timeout): "
		       "worker killed, %u packets in hand got the default verdict (%s)",
		       l->queue, s->cfg->handler_timeout_ms, given, verdict_name(dv));
	} else if (why == K_DEADLINE) {
		l->sh->c.worker_hangs++;
		ld_log("queue %u: %s: the worker was killed", l->queue,
		       was == W_LOADING ? "loading the policy and init took longer than "
					  "--init-timeout after a restart"
		       : was == W_SAVING ? "save() took longer than --reload-timeout"
					 : "the worker did not hand over within --stop-timeout");
	} else {
		l->sh->c.worker_crashes++;
		describe(status, how, sizeof(how));
		ld_log("queue %u: the worker %s; %u packets in hand got the default verdict (%s)%s%s",
		       l->queue, how, given, verdict_name(dv), l->sh->err[0] ? ": " : "", l->sh->err);
	}
	if (s->reloading && !s->reload_committed) {
		snprintf(msg, sizeof(msg), "the running worker%s died during the reload",
			 s->nlanes > 1 ? " of a queue" : "");
		ld_sup_abort_reload(s, msg);
	} else if (l->nxt.pid > 0) {
		ld_sup_kill(&l->nxt, K_ABORT);   /* committed: this lane starts afresh */
	}
	restart(s, l);
}

static void nxt_gone(struct super *s, struct lane *l, int status)
{
	struct wproc *w = &l->nxt;
	char how[128];
	enum why_killed why = w->killed;

	close_ctl(s, w);
	*w = (struct wproc){ .ctl = -1 };
	if (why == K_ABORT) {
		ld_sup_reload_maybe_done(s);
		return;   /* reported by whoever killed it */
	}
	if (why == K_DEADLINE)
		snprintf(how, sizeof(how), "it did not load, init and take over within %u ms "
			 "(--reload-timeout); the new worker was killed", s->cfg->reload_timeout_ms);
	else if (l->sh->err[0])
		snprintf(how, sizeof(how), "%.120s", l->sh->err);
	else
		describe(status, how, sizeof(how));
	if (s->nlanes > 1 && !(l->sh->err[0] && why == K_NONE)) {
		char tmp[sizeof(how)];

		snprintf(tmp, sizeof(tmp), "%s", how);
		snprintf(how, sizeof(how), "queue %u's new worker: %.100s", l->queue, tmp);
	}
	if (s->reload_committed) {
		/* past the swap: this lane's old worker leaves and a new one starts */
		ld_log("queue %u: the new worker died after the swap: %s", l->queue, how);
		ld_sup_reload_maybe_done(s);
		return;
	}
	ld_sup_abort_reload(s, l->sh->err[0] && why == K_NONE ? l->sh->err : how);
}

static void reap(struct super *s)
{
	struct wproc *w;
	struct lane *l;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		l = ld_lane_of_pid(s, pid, &w);
		if (l && w == &l->cur)
			cur_gone(s, l, status);
		else if (l)
			nxt_gone(s, l, status);
	}
}

/* Every lane's first worker said V: bind, install the rules, then G to all. */
static void first_valid(struct super *s)
{
	if (!ld_lanes_all(s, 0, W_READY))
		return;
	if (ld_sup_go_live(s) < 0)
		return;
	LANES(s, l) {
		l->cur.state = W_SERVING;
		l->cur.deadline_ns = 0;
		ld_sup_tell(&l->cur, LD_CTL_GO);
	}
}

/* A message on a worker's control socket. */
static void on_ctl(struct super *s, struct lane *l, struct wproc *w)
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
	if (w == &l->cur && m == LD_CTL_VALID && w->state == W_LOADING) {
		if (!s->started) {
			w->state = W_READY;   /* waits for the other lanes' first workers */
			w->deadline_ns = 0;
			first_valid(s);
			return;
		}
		w->state = W_SERVING;
		w->deadline_ns = 0;
		ld_sup_tell(w, LD_CTL_GO);
	} else if (w == &l->nxt && m == LD_CTL_VALID && w->state == W_LOADING && s->reloading) {
		w->state = W_VALID;
		ld_sup_all_valid(s);
	} else if (w == &l->cur && w->state == W_SAVING && m == LD_CTL_SAVED) {
		w->state = W_PAUSED;
		w->deadline_ns = 0;
		l->nxt.state = W_STATE;
		ld_sup_tell(&l->nxt, LD_CTL_STATE);
	} else if (w == &l->cur && w->state == W_SAVING && m == LD_CTL_SAVE_FAILED) {
		ld_sup_abort_reload(s, l->sh->err);
	} else if (w == &l->nxt && w->state == W_STATE && m == LD_CTL_READY) {
		w->state = W_READY;
		ld_sup_all_ready(s);
	}
}

void ld_sup_begin_stop(struct super *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_deadline_ns = ld_now_ns() + (uint64_t)s->cfg->stop_timeout_ms * MS;
	if (s->reloading) {
		LANES(s, l)
			ld_sup_kill(&l->nxt, K_ABORT);
		free(s->next_set);
		s->next_set = NULL;
		ld_sup_reload_done(s, 0, "luadivert is stopping");
	}
	LANES(s, l) {
		if (l->cur.pid <= 0)
			continue;
		if (s->started && (l->cur.state == W_SERVING || l->cur.state == W_SAVING ||
				   l->cur.state == W_PAUSED)) {
			l->cur.state = W_STOPPING;
			ld_sup_tell_serving(l, &l->cur, LD_CTL_QUIT);
		} else if (l->cur.state != W_STOPPING && l->cur.state != W_LEAVING) {
			ld_sup_kill(&l->cur, K_ABORT);   /* still loading: nothing in hand */
		}
	}
}

static void print_counters(struct super *s)
{
	uint64_t now = ld_now_ns();

	LANES(s, l) {
		struct ld_kernel_counters k;

		ld_kernel_counters_read(l->queue, &k);
		/* issue 14 item 22: a readable table with rates, then the line scripts parse */
		ld_counters_print_rates(stderr, l->queue, &l->sh->c, &l->usr1_prev,
					(double)(now - s->usr1_at) / 1e9, &k, &l->usr1_kprev);
		ld_counters_print(stderr, l->queue, &l->sh->c, &k);
		l->usr1_prev = l->sh->c;
		l->usr1_kprev = k;
	}
	ld_lanes_print_total(s, 1);
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

static void lane_tick(struct super *s, struct lane *l, uint64_t now)
{
	uint64_t busy = __atomic_load_n(&l->sh->busy_since_ns, __ATOMIC_ACQUIRE);
	struct wproc *c = &l->cur;

	/* busy is read after now: a batch that began in between is not late
	 * (busy > now; the unsigned difference would look like an age of 584 years) */
	if (c->pid > 0 && l->sh->phase == LD_PHASE_BATCH && busy && busy < now &&
	    now - busy > (uint64_t)s->cfg->handler_timeout_ms * MS &&
	    (c->state == W_SERVING || c->state == W_STOPPING ||
	     c->state == W_SAVING || c->state == W_LEAVING) && !s->stopping)
		ld_sup_kill(c, K_HANG);
	if (c->pid > 0 && c->deadline_ns && now > c->deadline_ns && !s->stopping)
		ld_sup_kill(c, K_DEADLINE);
	if (l->nxt.pid > 0 && l->nxt.deadline_ns && now > l->nxt.deadline_ns)
		ld_sup_kill(&l->nxt, K_DEADLINE);
	if (s->stopping && now > s->stop_deadline_ns && c->pid > 0)
		ld_sup_kill(c, K_STOP);
}

static void on_tick(struct super *s)
{
	uint64_t now = ld_now_ns();
	uint64_t ticks;

	if (read(s->tickfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		ld_log_limited(&s->lanes[0].lim, "tick: %s", strerror(errno));
	if (s->started)
		ld_obs_tick(s->obs, now);   /* issue 13: a --report sample when one is due */
	LANES(s, l)
		lane_tick(s, l, now);
	if (s->reload.pending && !s->stopping && !s->reloading && !ld_lanes_any_nxt(s) &&
	    ld_lanes_all(s, 0, W_SERVING))
		ld_sup_start_reload(s);
}

static int any_worker(const struct super *s)
{
	for (unsigned i = 0; i < s->nlanes; i++)
		if (s->lanes[i].cur.pid > 0 || s->lanes[i].nxt.pid > 0)
			return 1;
	return 0;
}

int ld_sup_loop(struct super *s)
{
	struct epoll_event evs[16];

	while (!(s->stopping && !any_worker(s))) {
		int n = epoll_wait(s->epfd, evs, 16, -1);

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
			else if (fd >= 0 && fd == ld_obs_fd(s->obs))
				ld_obs_handle(s->obs);   /* issue 13: GET /metrics */
			else
				LANES(s, l) {
					if (fd == l->cur.ctl) {
						on_ctl(s, l, &l->cur);
						break;
					}
					if (fd == l->nxt.ctl) {
						on_ctl(s, l, &l->nxt);
						break;
					}
				}
		}
	}
	return 0;
}

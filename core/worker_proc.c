// SPDX-License-Identifier: MIT
/*
 * worker_proc.c - the first steps of a worker process, right after the
 * supervisor forked it: die with the supervisor, keep only the descriptors
 * a worker needs, contain the policy, then load it and run the worker.
 */
#include "worker_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/* Close every descriptor above stderr except @a and @b. */
static void close_others(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0u, 0);
}

int ld_worker_process(const struct ld_worker_cfg *cfg, struct ld_shared *sh,
		      const struct ld_nfq *nfq, int ctl_fd, int with_policy, pid_t supervisor)
{
	char why[LD_SHARED_ERR_MAX / 2];
	struct ld_worker *w;
	int rc;

	/* A worker never outlives its supervisor: with both gone the queue
	 * socket closes, and --queue-bypass rules let traffic through. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0UL, 0UL, 0UL) < 0 || getppid() != supervisor)
		return LD_WEXIT_SETUP;
	/* Not the lock, the signalfd, the other workers' sockets, inotify. */
	close_others(nfq->fd, ctl_fd);
	/* What needs privileges and no policy: raw sockets, epoll, timerfd. */
	w = ld_worker_new(cfg, sh, nfq, ctl_fd, sh->err, sizeof(sh->err));
	if (!w)
		return LD_WEXIT_SETUP;
	sh->err[0] = '\0';   /* a warning from the setup is not an error */
	/*
	 * Containment: from here on no root, only CAP_NET_ADMIN (verdicts on
	 * the inherited queue socket) and CAP_NET_RAW (the raw sockets opened
	 * above), NoNewPrivs and the seccomp allow-list (docs/sandbox.md), then
	 * the policy's top level and init. The fallback worker runs no policy
	 * but is sandboxed all the same: one kind of worker to reason about.
	 * The memory cap is the Lua state's allocator (ld_worker_load_policy).
	 */
	if (ld_sandbox_apply(&cfg->sandbox, why, sizeof(why)) < 0) {
		snprintf(sh->err, sizeof(sh->err), "sandbox: %s", why);
		ld_worker_free(w);
		return LD_WEXIT_SETUP;
	}
	/* the supervisor died while the parent-death signal was briefly unset */
	if (getppid() != supervisor) {
		ld_worker_free(w);
		return LD_WEXIT_SETUP;
	}
	if (with_policy && ld_worker_load_policy(w, sh->err, sizeof(sh->err)) < 0) {
		ld_worker_free(w);
		return LD_WEXIT_POLICY;
	}
	rc = ld_worker_run(w);
	ld_worker_free(w);
	return rc;
}

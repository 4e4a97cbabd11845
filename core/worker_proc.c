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

/* Close every descriptor above stderr except those in @keep (-1 entries ignored). */
static void close_others(int *keep, int n)
{
	unsigned lo = 3;

	/* sort the few kept descriptors, then close the gaps between them */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
			int t = keep[j];

			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0u, 0);
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
	{
		int keep[2] = { nfq->fd, ctl_fd };

		close_others(keep, 2);
	}
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
	if (ld_worker_stop(w) < 0 && rc == LD_WEXIT_OK)
		rc = LD_WEXIT_POLICY;   /* on_stop raised: the supervisor exits 1 */
	ld_worker_free(w);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/* worker_proc.h - what a worker process runs after the supervisor forked it. */
#ifndef LD_WORKER_PROC_H
#define LD_WORKER_PROC_H

#include <sys/types.h>

#include "worker.h"

/**
 * ld_worker_process() - the body of a worker process
 * @cfg: worker configuration
 * @sh: the shared region
 * @nfq: the supervisor's queue state (its socket is inherited)
 * @ctl_fd: the worker's end of the control socket
 * @with_policy: 0 for the fallback worker (default verdicts, no Lua)
 * @supervisor: the supervisor's pid (to notice it died before the fork returned)
 *
 * Return: the process exit status (LD_WEXIT_*); the caller _exit()s with it.
 */
int ld_worker_process(const struct ld_worker_cfg *cfg, struct ld_shared *sh,
		      const struct ld_nfq *nfq, int ctl_fd, int with_policy, pid_t supervisor);

#endif /* LD_WORKER_PROC_H */

/* SPDX-License-Identifier: MIT */
/*
 * supervisor.h - `luadivert run`: the process that owns the queue, the
 * rules, the pid and lock files and the signals, and runs the policy only
 * in worker processes it can kill and replace.
 *
 *   supervisor ── binds the queue (netlink socket), installs rules, signals,
 *    │            --watch, deadlines; never runs policy code
 *    ├── worker  (fork) inherits the socket: same portid, its verdicts count
 *    └── worker' (fork, during a reload) loads + inits the new version;
 *                takes over when ready, the old one leaves between batches
 *
 * A worker that hangs (a batch longer than --handler-timeout) or dies is
 * replaced: what it had in hand gets the default verdict, held packets stay
 * (core/shared_state.h). After --max-restarts within --restart-window the
 * policy is given up on: a worker without Lua gives every packet the
 * default verdict until the next successful reload or the stop.
 *
 * The supervisor stays root and is never sandboxed (it removes the rules
 * and files at exit, and checks the policy files before every fork); each
 * worker sandboxes itself before it loads the policy (core/worker_proc.c,
 * docs/sandbox.md).
 */
#ifndef LD_SUPERVISOR_H
#define LD_SUPERVISOR_H

#include <stdint.h>

#include "rules.h"
#include "worker.h"

enum {
	LD_HANDLER_TIMEOUT_MS_DEFAULT = 500,   /* one batch in the policy */
	LD_INIT_TIMEOUT_MS_DEFAULT = 5000,     /* load + init at start, and after a restart */
	LD_RELOAD_TIMEOUT_MS_DEFAULT = 5000,   /* load + init + save + on_reload of a reload */
	LD_STOP_TIMEOUT_MS_DEFAULT = 3000,     /* SIGTERM to exit */
	LD_MAX_RESTARTS_DEFAULT = 5,           /* restarts within the window before giving up */
	LD_RESTART_WINDOW_S_DEFAULT = 60,
	LD_MAX_RESTARTS_MAX = 1000,
	LD_WORKERS_MAX = 256,                  /* --workers */
};

struct ld_super_cfg {
	struct ld_worker_cfg w;
	struct ld_rules_cfg *rules;      /* the command line's; NULL: --no-rules */
	unsigned given;                  /* enum ld_decl_bit: fields given on the command line */
	const char *pidfile;
	uint32_t handler_timeout_ms;
	uint32_t init_timeout_ms;
	uint32_t reload_timeout_ms;
	uint32_t stop_timeout_ms;
	uint32_t max_restarts;
	uint32_t restart_window_s;
	int allow_insecure;              /* --allow-insecure-policy: skip the file checks */
	uint32_t workers;                /* issue 16: queues Q..Q+workers-1, one worker each; 0 = 1 */
};

/**
 * ld_supervise() - run the queue until SIGINT/SIGTERM
 * @cfg: configuration
 *
 * Return: the exit status: LD_EXIT_OK, LD_EXIT_FAIL (did not start, or a
 * fatal error), LD_EXIT_GAVE_UP (the policy was given up on and was still
 * when it stopped), LD_EXIT_STOP_KILLED (the worker missed the stop deadline).
 */
int ld_supervise(const struct ld_super_cfg *cfg);

#endif /* LD_SUPERVISOR_H */

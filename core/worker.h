/* SPDX-License-Identifier: MIT */
/*
 * worker.h - one queue, one thread, one lua_State: the event loop that
 * receives batches, runs the policy, sends verdicts and releases held packets.
 * A worker owns everything it touches; nothing is shared between workers.
 */
#ifndef LD_WORKER_H
#define LD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "ld_abi.h"
#include "log.h"
#include "lua_host.h"
#include "nfq.h"
#include "observe.h"
#include "timer_heap.h"

enum {
	LD_HOLD_MAX_DEFAULT = 4096,      /* packets held at once */
	LD_HOLD_COPIES_DEFAULT = 256,    /* held packets whose bytes were changed */
	LD_BATCHES_PER_WAKEUP = 16,      /* then timers and signals get a turn */
	LD_QUEUE_HEADROOM = 1024,        /* queue length above what is held */
};

enum ld_held_on_exit {
	LD_HELD_RELEASE = 0,   /* send each held packet's own verdict at once */
	LD_HELD_DROP = 1,      /* drop them */
};

struct ld_worker_cfg {
	struct ld_nfq_cfg nfq;
	const char *policy;
	const char *lua_dir;
	uint32_t hold_max;
	uint32_t hold_copies;
	uint64_t hold_bytes;    /* memory for copies of held local packets, 0: never take over */
	int held_on_exit;       /* enum ld_held_on_exit */
	int signal_fd;          /* signalfd for INT/TERM/HUP/USR1, or -1 */
	int watch;              /* reload when the policy file changes */
	struct ld_obs_cfg obs;  /* --metrics, --record, --report (issue 13) */
};

struct ld_worker;

/**
 * ld_worker_new() - load the policy, then bind the queue
 * @cfg: configuration (copied)
 * @err: receives the reason on failure
 * @errlen: size of @err
 * @policy_failed: set to 1 when the failure was the policy's (exit status 1)
 *
 * The policy is loaded first, so a policy with errors never touches the queue.
 * Return: the worker, or NULL.
 */
struct ld_worker *ld_worker_new(const struct ld_worker_cfg *cfg, char *err, size_t errlen,
				int *policy_failed);

/**
 * ld_worker_run() - the event loop, until SIGINT/SIGTERM or a fatal error
 * @w: worker
 *
 * Return: 0 after a clean stop, -1 after a fatal socket error (the queue is
 * still closed cleanly: every packet gets a verdict).
 */
int ld_worker_run(struct ld_worker *w);

/**
 * ld_worker_set_status_file() - where reload outcomes are written
 * @w: worker
 * @path: status file read by `luadivert reload`
 */
void ld_worker_set_status_file(struct ld_worker *w, const char *path);

struct ld_divert;
struct ld_policy_rules;

/**
 * ld_worker_set_divert() - swap these divert rules with the code on reload
 * @w: worker
 * @d: the installed rules (kept by the caller, outlives the loop), or NULL
 */
void ld_worker_set_divert(struct ld_worker *w, struct ld_divert *d);

/**
 * ld_worker_declared() - the divert rules the running policy declares
 * @w: worker
 * @out: receives them
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_worker_declared(struct ld_worker *w, struct ld_policy_rules *out, char *err,
		       size_t errlen);

/**
 * ld_worker_free() - release held packets, verdict what is left in the
 * queue, unbind, print the counters and free everything
 * @w: worker, may be NULL
 */
void ld_worker_free(struct ld_worker *w);

#endif /* LD_WORKER_H */

/* SPDX-License-Identifier: MIT */
/*
 * worker.h - one queue, one thread, one lua_State: the event loop that
 * receives batches, runs the policy, sends verdicts and releases held packets.
 * It runs in a worker process forked by the supervisor (core/supervisor.c):
 * the queue socket is inherited, and what must outlive the process (held
 * packets, counters, ids in hand) lives in the shared region
 * (core/shared_state.h). Commands come from the supervisor on a socket.
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
#include "sandbox.h"
#include "shared_state.h"
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
	int watch;              /* reload when the policy file changes (supervisor) */
	struct ld_obs_cfg obs;  /* --metrics, --record, --report (issue 13; docs/process.md) */
	size_t memory_max;      /* cap on the policy's Lua heap, bytes (0: none) */
	struct ld_sandbox_cfg sandbox;  /* applied in the worker before the policy loads */
	int no_offload;         /* --no-offload: divert.OFFLOAD is a plain pass, no offload rules */
	uint32_t busy_poll_us;  /* --busy-poll: spin this long after a packet before sleeping */
	int32_t timer_lead_us;  /* --timer-lead: LD_TIMER_LEAD_AUTO or microseconds (timer_lead.h) */
};

/*
 * The control protocol, one byte per message on a SOCK_SEQPACKET pair.
 *
 *   worker                         supervisor
 *   load + init ──── V ──────────►              (or exit LD_WEXIT_POLICY, why in sh->err)
 *               ◄─── L ──────────  state of the old worker in the shared region
 *   on_reload   ──── Y ──────────►              (or exit LD_WEXIT_POLICY)
 *               ◄─── G ──────────  serve the queue: adopt the held packets
 *   ... serving ...
 *               ◄─── S ──────────  save for a successor, then pause
 *   save()      ──── P / p ──────► (p: failed, why in sh->err)
 *               ◄─── R | H ──────  resume | exit, leaving held packets to the successor
 *               ◄─── Q ──────────  stop: release held packets, on_stop, exit
 *
 * EOF on the socket (the supervisor is gone) ends the worker at once.
 */
enum ld_ctl_msg {
	LD_CTL_VALID = 'V', LD_CTL_STATE = 'L', LD_CTL_READY = 'Y', LD_CTL_GO = 'G',
	LD_CTL_SAVE = 'S', LD_CTL_SAVED = 'P', LD_CTL_SAVE_FAILED = 'p',
	LD_CTL_RESUME = 'R', LD_CTL_HANDOVER = 'H', LD_CTL_QUIT = 'Q',
};

/* Exit statuses of a worker process. */
enum { LD_WEXIT_OK = 0, LD_WEXIT_POLICY = 3, LD_WEXIT_SETUP = 4 };

struct ld_worker;

/**
 * ld_worker_new() - set up a worker in a freshly forked worker process:
 * raw sockets, epoll, timer; no policy yet
 * @cfg: configuration (copied)
 * @sh: the shared region (held packets, counters, heartbeat)
 * @nfq: the supervisor's queue state; its socket is inherited (copied)
 * @ctl_fd: this worker's end of the control socket
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Without ld_worker_load_policy() it is the fallback worker: every packet
 * gets the default verdict, held packets are still released on time.
 * Return: the worker, or NULL.
 */
struct ld_worker *ld_worker_new(const struct ld_worker_cfg *cfg, struct ld_shared *sh,
				const struct ld_nfq *nfq, int ctl_fd, char *err, size_t errlen);

/**
 * ld_worker_load_policy() - load the policy and run its init
 * @w: worker
 * @err: receives "file:line: message" on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_worker_load_policy(struct ld_worker *w, char *err, size_t errlen);

/**
 * ld_worker_run() - the control protocol above, and the event loop while
 * serving, until Q, H, EOF on the control socket or a fatal error
 * @w: worker
 *
 * Return: LD_WEXIT_OK, or LD_WEXIT_POLICY when on_reload failed (why in
 * sh->err), or LD_WEXIT_SETUP after a fatal socket error.
 */
int ld_worker_run(struct ld_worker *w);

/**
 * ld_worker_stop() - after ld_worker_run(), when told to stop (Q): release
 * the held packets (--held-on-exit) and call on_stop while the packet
 * buffers are mapped; nothing when the worker handed over
 * @w: worker
 *
 * Return: 0, or -1 when on_stop raised (logged).
 */
int ld_worker_stop(struct ld_worker *w);

/**
 * ld_worker_free() - free everything (no on_stop: see ld_worker_stop());
 * writes the --report if this worker served at the stop; the queue socket
 * stays open (shared)
 * @w: worker, may be NULL
 */
void ld_worker_free(struct ld_worker *w);

#endif /* LD_WORKER_H */

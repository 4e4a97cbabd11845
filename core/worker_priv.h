/* SPDX-License-Identifier: MIT */
/*
 * worker_priv.h - what the parts of a worker share (worker.h is the
 * interface):
 *
 *   worker.c       the event loop: a batch in, one Lua call, verdicts out
 *   worker_hold.c  held packets: into the timer heap (or, for local ones,
 *                  a copy into the hold store), out when due
 *   worker_ctl.c   the control socket: go, save, hand over, stop (worker.h)
 *
 * Not an interface for anything else.
 */
#ifndef LD_WORKER_PRIV_H
#define LD_WORKER_PRIV_H

#include "worker.h"

#include "hold_takeover.h"
#include "inject.h"
#include "lua_inject.h"
#include "loop_guard.h"
#include "timer_lead.h"

/* A released packet whose stored bytes are still needed after the send. */
struct ld_release {
	uint32_t slot;
	uint32_t len;
	uint32_t dup;
	uint32_t flags;
	uint32_t outdev;
};

struct ld_worker {
	struct ld_worker_cfg cfg;
	struct ld_nfq nfq;
	struct ld_lua *lua;
	struct ld_batch batch;
	struct ld_packet pkts[LD_BATCH_MAX];
	struct ld_shared *sh;    /* held packets, counters, heartbeat: outlive this process */
	struct ld_heap *heap;    /* &sh->heap */
	uint8_t *store;          /* hold_copies slots of LD_PACKET_MAX bytes, shared */
	uint32_t *store_free;    /* stack of free slot numbers (sh->store_nfree entries) */
	struct ld_release *releases; /* slots to inject from / free once the send is done */
	uint32_t nreleases;
	struct ld_inject inject;   /* raw sockets for duplicates; fd4 < 0 when unavailable */
	struct ld_inject_sink sink; /* divert.inject() from the policy: through inject */
	struct ld_takeover take;   /* copies of held local packets, in sh's hold store */
	uint32_t kernel_held;      /* held packets still in the kernel queue */
	uint32_t pend_from;        /* sh->rel[] from here: taken copies queued, not sent */
	uint64_t segments_seen;    /* take.segments already added to c->segments */
	int epfd;
	int tfd;
	uint64_t armed_ns;       /* when the timerfd fires, 0 = disarmed */
	uint64_t armed_from_ns;  /* the same, or when it was armed if that was later */
	uint64_t poll_until_ns;  /* woken a lead early: poll, not sleep, until then (0: not) */
	uint64_t poll_from_ns;   /* when that poll began */
	struct ld_timer_lead lead; /* armed this long before the due time (timer_lead.h) */
	int ctl_fd;              /* control socket to the supervisor */
	int serving;             /* G received: the queue is ours */
	int stop;
	int release_on_exit;     /* Q: release held packets before exiting */
	int failed;
	struct ld_counters *c;   /* &sh->c */
	struct ld_log_limit lim;
	struct ld_obs *obs;      /* issue 13: copies packets into the supervisor's --record */
	struct ld_loop_guard loops;  /* REPEAT / queue-to-self loops */
};

/* The stores below are read by the supervisor if this process dies. */
#define SHARED_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELEASE)

/* worker.c */
/**
 * worker_send_one() - queue one verdict (sent with the batch's sendmsg) and count it
 * @w: worker
 * @id: packet id
 * @verdict: LD_* verdict
 * @set: LD_SET_* flags (mark, conntrack mark)
 * @mark: new mark
 * @ct_mark: new conntrack mark
 * @payload: changed bytes, or NULL
 * @len: their length
 */
void worker_send_one(struct ld_worker *w, uint32_t id, uint32_t verdict, uint32_t set,
		     uint32_t mark, uint32_t ct_mark, const uint8_t *payload, uint32_t len);

/* worker_hold.c */
/**
 * worker_len_ok() - a length the core may copy or send: whole, and within
 * the buffer the packet lies in
 * @p: packet
 *
 * Return: 1 or 0.
 */
int worker_len_ok(const struct ld_packet *p);
/**
 * worker_payload_of() - a payload we may send back: changed, and whole (not
 * cut by the copy range)
 * @w: worker
 * @p: packet
 *
 * Return: the bytes, or NULL when there are none to send.
 */
const uint8_t *worker_payload_of(struct ld_worker *w, const struct ld_packet *p);
/**
 * worker_hold_packet() - keep @p for later
 * @w: worker
 * @p: packet
 *
 * A copy is put in the shared hold store before its heap entry is pushed:
 * a worker killed in between leaves only chunks no entry names, which
 * ld_shared_recover() frees.
 *
 * Return: LD_TAKE_KEEP when it stays in the kernel queue, LD_TAKE_COPY /
 * LD_TAKE_DROP when the original must be dropped now (hold_takeover.h),
 * LD_TAKE_FULL when the copy store is full, or -2 when the hold table is full.
 */
int worker_hold_packet(struct ld_worker *w, struct ld_packet *p);
/**
 * worker_inject_copies() - send @dup extra copies through the raw sockets
 * @w: worker
 * @data: the packet's bytes (completed and segmented as needed here)
 * @len: their length
 * @dup: copies to send
 * @flags: the packet's LD_PKT_* flags
 * @outdev: its output device
 */
void worker_inject_copies(struct ld_worker *w, uint8_t *data, uint32_t len, uint32_t dup,
			  uint32_t flags, uint32_t outdev);
/**
 * worker_timer_fired() - the hold timer fired: release what is due, on time
 * @w: worker
 * @fired: 1 when the timerfd's expiry count was read (not a stale event)
 */
void worker_timer_fired(struct ld_worker *w, int fired);

/**
 * worker_poll_due() - while polling for a due time: release when it has come
 * @w: worker
 */
void worker_poll_due(struct ld_worker *w);

/**
 * worker_release_held() - verdict every held packet due by @now
 * @w: worker
 * @now: clock
 * @all: every held packet (the stop)
 * @drop: DROP instead of their verdict (--held-on-exit drop)
 *
 * Each one goes into the shared release log before it leaves the heap, and
 * the log is emptied after the send: if this process dies in between, the
 * supervisor sends those verdicts again (a second one is refused).
 */
void worker_release_held(struct ld_worker *w, uint64_t now, int all, int drop);

/* worker_ctl.c */
/**
 * worker_handle_ctl() - read and act on the supervisor's messages (save, hand over, stop)
 * @w: worker
 */
void worker_handle_ctl(struct ld_worker *w);
/**
 * worker_await_go() - wait for G (serve) or a stop before touching the queue
 * @w: worker
 *
 * Return: LD_WEXIT_OK, or the exit status to leave with.
 */
int worker_await_go(struct ld_worker *w);

#endif /* LD_WORKER_PRIV_H */

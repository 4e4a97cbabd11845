// SPDX-License-Identifier: MIT
/*
 * worker.c - the event loop of one queue.
 *
 *   epoll ─┬─ netlink socket readable → receive a batch → one Lua call →
 *          │                            verdicts (one sendmsg) → next batch
 *          ├─ timerfd                  → release held packets that are due
 *          └─ control socket           → save / pause / stop (worker.h)
 *
 * It runs in a worker process; the supervisor owns signals and reloads.
 * Around each batch it notes in the shared region which ids it has in hand
 * and since when the policy runs: if the process hangs or dies there, the
 * supervisor gives those packets the default verdict (shared_state.c).
 */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "csum.h"
#include "hold_takeover.h"
#include "inject.h"
#include "lua_inject.h"
#include "loop_guard.h"
#include "offload.h"
#include "busy_poll.h"
#include "payload_check.h"

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

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* After each logged sendmmsg of taken copies (inject.h): mark what left. */
static void settle_sends(void *ctx, const struct ld_inject_log *log)
{
	(void)log;   /* it is ((struct ld_shared *)ctx)->sendlog */
	ld_shared_settle_sends(ctx);
}

/* divert.inject() live: the raw sockets, with the skip mark (core/lua_inject.h). */
static int worker_inject(void *ctx, const uint8_t *pkt, uint32_t len, int inbound,
			 uint32_t ifindex)
{
	struct ld_worker *w = ctx;

	if (w->inject.fd4 < 0 && w->inject.fd6 < 0)
		return -ENOTSUP;
	if ((inbound ? ld_inject_send(&w->inject, pkt, len)
		     : ld_inject_send_dev(&w->inject, pkt, len, ifindex)) < 0) {
		w->c->inject_errors++;
		return -errno;
	}
	w->c->injected++;
	return 0;
}

struct ld_worker *ld_worker_new(const struct ld_worker_cfg *cfg, struct ld_shared *sh,
				const struct ld_nfq *nfq, int ctl_fd, char *err, size_t errlen)
{
	struct ld_worker *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->cfg = *cfg;
	w->epfd = w->tfd = -1;
	w->ctl_fd = ctl_fd;
	w->inject.fd4 = w->inject.fd6 = -1;
	w->take.ioctl_fd = -1;
	w->sh = sh;
	w->c = &sh->c;
	w->heap = &sh->heap;
	w->store = ld_shared_store(sh);
	w->store_free = ld_shared_free_stack(sh);
	/* the inherited socket, with this process's counters and log limit */
	w->nfq = *nfq;
	w->nfq.c = w->c;
	w->nfq.lim = &w->lim;
	w->batch.pkts = w->pkts;
	w->batch.queue = cfg->nfq.queue;
	w->batch.default_verdict = cfg->nfq.default_verdict;

	w->sink = (struct ld_inject_sink){ .send = worker_inject, .ctx = w };
	/* issue 13: the metrics table Lua writes must exist before the policy loads */
	w->obs = ld_obs_new(&cfg->obs, cfg->nfq.queue, cfg->nfq.default_verdict, w->c, err, errlen);
	if (!w->obs)
		goto fail;
	w->batch.metrics = ld_obs_tables(w->obs);
	w->releases = calloc(cfg->hold_copies ? cfg->hold_copies : 1, sizeof(*w->releases));
	if (!w->releases) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ld_takeover_init(&w->take, cfg->hold_bytes ? ld_shared_hold_store(sh) : NULL, err,
			     errlen) < 0)
		goto fail;
	if (ld_inject_open(&w->inject, LD_INJECT_MARK_DEFAULT, err, errlen) < 0) {
		/* Only duplicates need it: run without, and count what cannot be sent. */
		ld_log("duplicates disabled: %s", err);
		w->inject.fd4 = w->inject.fd6 = -1;
	}
	/* taken copies' sends are logged where the supervisor sees them (mark_sent()) */
	w->inject.log = &sh->sendlog;
	w->inject.settle = settle_sends;
	w->inject.settle_ctx = sh;
	/* Held packets are released by a timerfd; the default 50 us timer slack
	 * would be most of the release error (docs/shaping.md measures it). */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) < 0)
		ld_log("timer slack: %s (releases may be up to 50 us late)", strerror(errno));
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (w->epfd < 0 || w->tfd < 0) {
		snprintf(err, errlen, "epoll/timerfd: %s", strerror(errno));
		goto fail;
	}
	if (epoll_add(w->epfd, w->tfd) < 0 || epoll_add(w->epfd, w->ctl_fd) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		goto fail;
	}
	return w;
fail:
	ld_worker_free(w);
	return NULL;
}

int ld_worker_load_policy(struct ld_worker *w, char *err, size_t errlen)
{
	/* allow_insecure: the supervisor checked the files as root before the
	 * fork (ld_lua_check_files); here we are the sandbox's user already */
	struct ld_lua_cfg lcfg = { .policy = w->cfg.policy, .lua_dir = w->cfg.lua_dir,
				   .log_limit = &w->lim, .sink = &w->sink, .memory_max = w->cfg.memory_max,
				   .allow_insecure = 1 };

	w->lua = ld_lua_new(&lcfg, &w->batch, err, errlen);
	if (!w->lua)
		return -1;
	/* issue 18 and 14: what the supervisor needs from the policy, as plain
	 * data: the rules it declares (compiled and installed or swapped by
	 * the supervisor) and the files --watch must watch */
	if (ld_lua_declared(w->lua, &w->sh->decl, err, errlen) < 0)
		return -1;
	if (ld_lua_watch_files(w->lua, w->sh->modules, sizeof(w->sh->modules)) < 0)
		w->sh->modules[0] = '\0';
	return 0;
}

static void arm_timer(struct ld_worker *w)
{
	const struct ld_held *top = ld_heap_peek(w->heap);
	uint64_t due = top ? top->due_ns : 0;
	struct itimerspec its = { 0 };

	if (due == w->armed_ns)
		return;
	if (due) {
		its.it_value.tv_sec = (time_t)(due / 1000000000u);
		its.it_value.tv_nsec = (long)(due % 1000000000u);
	}
	if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		ld_log_limited(&w->lim, "timerfd_settime: %s", strerror(errno));
		return;
	}
	w->armed_ns = due;
}

static void count_verdict(struct ld_counters *c, uint32_t verdict)
{
	if ((verdict & 0xff) == LD_DROP) {
		c->dropped++;
		return;
	}
	c->passed++;
	/* issue 13: the kinds of accept, for luadivert_verdicts_total */
	if ((verdict & 0xff) == LD_REPEAT)
		c->repeated++;
	else if ((verdict & 0xff) == LD_QUEUE)
		c->queued++;
}

/* A length the core may copy or send: whole, and within the buffer it lies in. */
static int len_ok(const struct ld_packet *p)
{
	return !(p->flags & LD_PKT_TRUNCATED) && p->len > 0 && p->len <= p->cap &&
	       p->len <= LD_PACKET_MAX;
}

static const uint8_t *payload_of(struct ld_worker *w, const struct ld_packet *p);

static int can_inject(const struct ld_worker *w, const struct ld_packet *p)
{
	uint8_t v = p->len ? p->data[0] >> 4 : 0;

	return (v == 4 && w->inject.fd4 >= 0) || (v == 6 && w->inject.fd6 >= 0);
}

/*
 * Keep @p for later. Return LD_TAKE_KEEP when it stays in the kernel queue,
 * LD_TAKE_COPY / LD_TAKE_DROP when the original must be dropped now
 * (hold_takeover.h), LD_TAKE_FULL when the copy store is full, or -2 when
 * the hold table is full. A copy is put in the shared hold store before
 * its heap entry is pushed: a worker killed in between leaves only chunks
 * no entry names, which ld_shared_recover() frees.
 */
static int hold_packet(struct ld_worker *w, struct ld_packet *p)
{
	struct ld_held e = {
		.due_ns = p->tstamp_ns + p->hold_ns,
		.id = p->id,
		.verdict = p->verdict,
		.set = p->set & ~(uint32_t)LD_SET_HOLD,
		.new_mark = p->new_mark,
		.new_ct_mark = p->new_ct_mark,
		.slot = LD_HELD_NO_SLOT,
		.dup = p->dup,
		.flags = p->flags,
		.copy = LD_STORE_NONE,
		.outdev = p->outdev,
	};
	int take;

	if (w->heap->n >= w->heap->cap)
		return -2;
	/* The same length checks as the immediate path (payload_of()). */
	if ((e.set & LD_SET_MODIFIED) && !payload_of(w, p))
		e.set &= ~(uint32_t)LD_SET_MODIFIED;
	if (e.dup && !len_ok(p))
		e.dup = 0;
	/* Without a raw socket for its family a copy could not be sent: keep it
	 * queued; also when the supervisor may have verdicted it already, after a
	 * crash (its copy would be a second packet; shared_state.h). */
	if (can_inject(w, p) && !ld_shared_early(w->sh, p->id))
		take = ld_takeover_take(&w->take, p, p->tstamp_ns, &e.copy);
	else
		take = LD_TAKE_KEEP;
	if (take == LD_TAKE_DROP || take == LD_TAKE_FULL)
		return take;
	if (take == LD_TAKE_COPY) {
		e.taken = 1;
		e.len = p->len;
		if (ld_heap_push(w->heap, &e) < 0) {
			ld_store_free(w->take.store, e.copy);
			return -2;
		}
		return take;
	}
	if ((e.set & LD_SET_MODIFIED) || e.dup) {
		/* The receive buffer is reused by the next batch: keep a copy of
		 * bytes we will send later (changed bytes, or duplicates). */
		if (!w->sh->store_nfree)
			return -2;
		e.slot = w->store_free[--w->sh->store_nfree];
		e.len = p->len;
		memcpy(w->store + (size_t)e.slot * LD_PACKET_MAX, p->data, p->len);
	}
	if (ld_heap_push(w->heap, &e) < 0)
		return -2;
	w->kernel_held++;
	return LD_TAKE_KEEP;
}

/* A payload we may send back: changed, and whole (not cut by the copy range). */
static const uint8_t *payload_of(struct ld_worker *w, const struct ld_packet *p)
{
	const char *why;

	if (!(p->set & LD_SET_MODIFIED))
		return NULL;
	why = ld_payload_refusal(p->len, p->cap, p->flags & LD_PKT_TRUNCATED);
	if (why) {
		w->c->errors++;
		ld_log_limited(&w->lim, "packet id %u: modified bytes not sent (%s)", p->id, why);
		return NULL;
	}
	return p->data;
}

/* GSO segments sent since the last look, into the shared counters. */
static void count_segments(struct ld_worker *w)
{
	w->c->segments += w->take.segments - w->segments_seen;
	w->segments_seen = w->take.segments;
}

/*
 * Send @dup extra copies of a packet through the raw sockets. The bytes are
 * ours by now (their verdict is sent); a checksum the kernel had left for
 * the NIC to finish (CSUMNOTREADY) is completed in place, and a GSO packet
 * is cut to the output device's MTU (hold_takeover.h).
 */
static void inject_copies(struct ld_worker *w, uint8_t *data, uint32_t len, uint32_t dup,
			  uint32_t flags, uint32_t outdev)
{
	uint32_t failed;
	uint32_t sent = ld_takeover_send(&w->take, &w->inject, data, len, outdev, flags, dup,
					 ld_now_ns(), &failed);

	w->c->injected += sent;
	count_segments(w);
	if (failed) {
		w->c->inject_errors += failed;
		ld_log_limited(&w->lim, "duplicate not sent: %s",
			       w->inject.fd4 >= 0 || w->inject.fd6 >= 0 ? strerror(w->inject.last_errno)
								   : "no raw socket");
	}
}

/* The stores below are read by the supervisor if this process dies. */
#define SHARED_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELEASE)

/*
 * Taken copies logged in sh->rel[pend_from..@upto) were handed to the
 * kernel: say so in the log, so that the next worker never sends them
 * again (a raw send, unlike a verdict, is not refused the second time).
 * The ones the kernel took are marked already, right after their
 * sendmmsg, by settle_sends(); this marks the rest (refused ones: a retry
 * would be refused too), and it is not what closes the window: a kill
 * between the sendmmsg and these stores is recovered from sh->sendlog,
 * where the kernel itself wrote which messages left (inject.h).
 */
static void mark_sent(struct ld_worker *w, uint32_t upto)
{
	struct ld_shared *sh = w->sh;

	for (uint32_t i = w->pend_from; i < upto; i++)
		if (sh->rel[i].taken)
			SHARED_SET(sh->rel[i].taken, 2u);
	w->pend_from = upto;
}

/*
 * Send a taken-over packet's copy (and its duplicates) at its release time;
 * its entry is sh->rel[sh->rel_n - 1]. Copies are queued and sent in
 * batches (ld_takeover_release()); what a call sent is marked sent.
 */
static void release_copy(struct ld_worker *w, const struct ld_held *e, int drop, uint64_t now)
{
	uint32_t failed, times = (drop || (e->verdict & 0xff) == LD_DROP) ? 0 : 1 + e->dup;
	uint32_t before = w->take.bn;

	/* tagged with its release-log index: settle_sends() marks it from the log */
	ld_takeover_release(&w->take, &w->inject, e->copy, e->len, e->outdev, e->flags, times,
			    now, w->sh->rel_n - 1, &failed);
	if (w->take.bn == 0)
		mark_sent(w, w->sh->rel_n);            /* sent at once (GSO), or nothing queued */
	else if (w->take.bn < before + times)
		mark_sent(w, w->sh->rel_n - 1);        /* the queue was sent before this one */
	count_segments(w);
	if (!times) {
		w->c->dropped++;
		return;
	}
	w->c->passed++;
	w->c->injected += e->dup;
	if (e->set & LD_SET_MODIFIED)
		w->c->modified++;   /* the copy carries the changed bytes */
	if (failed) {
		w->c->inject_errors += failed;
		ld_log_limited(&w->lim, "held packets: %u not sent: %s", failed,
			       strerror(w->inject.last_errno));
	}
}

/* Send the released copies queued by release_copy(), and log them sent. */
static void flush_copies(struct ld_worker *w)
{
	uint32_t failed;

	ld_takeover_flush(&w->take, &w->inject, &failed);
	mark_sent(w, w->sh->rel_n);
	if (failed) {
		w->c->inject_errors += failed;
		ld_log_limited(&w->lim, "held packets: %u not sent: %s", failed,
			       strerror(w->inject.last_errno));
	}
}

static void send_one(struct ld_worker *w, uint32_t id, uint32_t verdict, uint32_t set,
		     uint32_t mark, uint32_t ct_mark, const uint8_t *payload, uint32_t len)
{
	ld_nfq_verdict(&w->nfq, id, verdict, set & (LD_SET_MARK | LD_SET_CT_MARK), mark,
		       ct_mark, payload, len);
	count_verdict(w->c, verdict);
	if (payload)
		w->c->modified++;
}

/*
 * Turn the batch's verdicts into messages. Plain accepts become one
 * VERDICT_BATCH, sent after the individual verdicts; that is only safe while
 * no held packet is in the kernel queue, since a batch verdict covers every
 * queued packet up to its id.
 */
static void send_batch_verdicts(struct ld_worker *w)
{
	uint32_t max_accept = 0;
	int have_accept = 0, can_batch;

	for (uint32_t i = 0; i < w->batch.n; i++) {
		struct ld_packet *p = &w->pkts[i];

		int r;

		if (!(p->set & LD_SET_HOLD))
			continue;
		r = hold_packet(w, p);
		if (r == LD_TAKE_KEEP || r == LD_TAKE_COPY) {
			w->c->held++;
			if (r == LD_TAKE_COPY) {
				/* The copy is ours: free the original (and its socket's memory). */
				w->c->taken++;
				ld_nfq_verdict(&w->nfq, p->id, LD_DROP, 0, 0, 0, NULL, 0);
			}
			continue;
		}
		p->verdict = LD_DROP;
		p->set = 0;
		p->dup = 0;
		if (r == LD_TAKE_DROP)
			continue;  /* a delayed drop of a local packet: drop it now */
		/* Tail drop: the newest packet does not fit. */
		if (r == LD_TAKE_FULL) {
			w->c->copy_overflow++;
			ld_log_limited(&w->lim, "hold store full (--hold-bytes %llu): dropping packet id %u",
				       (unsigned long long)w->cfg.hold_bytes, p->id);
		} else {
			w->c->hold_overflow++;
			ld_log_limited(&w->lim, "hold table full (%u packets): dropping packet id %u",
				       w->heap->cap, p->id);
		}
	}
	/* Taken-over packets are no longer queued: only kernel holds forbid it. */
	can_batch = w->kernel_held == 0;
	for (uint32_t i = 0; i < w->batch.n; i++) {
		struct ld_packet *p = &w->pkts[i];
		const uint8_t *payload;

		if (p->set & LD_SET_HOLD)
			continue;
		if (can_batch && p->verdict == LD_PASS && !(p->set & ~(uint32_t)LD_SET_HOLD)) {
			max_accept = p->id;
			have_accept = 1;
			w->c->passed++;
			continue;
		}
		payload = payload_of(w, p);
		send_one(w, p->id, p->verdict, p->set, p->new_mark, p->new_ct_mark, payload,
			 p->len);
	}
	if (have_accept)
		ld_nfq_verdict_batch(&w->nfq, max_accept, LD_PASS);
	ld_nfq_flush(&w->nfq);
	/* Copies go out after the originals' verdicts; a dropped packet has none. */
	for (uint32_t i = 0; i < w->batch.n; i++) {
		struct ld_packet *p = &w->pkts[i];

		if (p->dup && !(p->set & LD_SET_HOLD) && (p->verdict & 0xff) != LD_DROP && len_ok(p))
			inject_copies(w, p->data, p->len, p->dup, p->flags, p->outdev);
	}
}

/* After the send that carried them: inject held packets' copies, free their slots. */
static void finish_releases(struct ld_worker *w)
{
	while (w->nreleases) {
		struct ld_release *r = &w->releases[--w->nreleases];

		if (r->dup)
			inject_copies(w, w->store + (size_t)r->slot * LD_PACKET_MAX, r->len, r->dup,
				      r->flags, r->outdev);
		w->store_free[w->sh->store_nfree++] = r->slot;
	}
}

/*
 * Verdict every held packet due by @now (all of them when @all). Each one
 * goes into the shared release log before it leaves the heap, and the log
 * is emptied after the send: if this process dies in between, the
 * supervisor sends those verdicts again (a second one is refused).
 */
static void release_held(struct ld_worker *w, uint64_t now, int all, int drop)
{
	struct ld_shared *sh = w->sh;
	struct ld_held e;
	const struct ld_held *top;
	int any = 0;

	while ((top = ld_heap_peek(w->heap)) && (all || top->due_ns <= now)) {
		const uint8_t *payload = NULL;

		sh->rel[sh->rel_n] = *top;
		if (drop) {
			sh->rel[sh->rel_n].verdict = LD_DROP;
			sh->rel[sh->rel_n].set = 0;
		}
		SHARED_SET(sh->rel_n, sh->rel_n + 1);
		ld_heap_pop(w->heap, &e);
		if (e.taken) {
			release_copy(w, &e, drop, now);
			if (sh->rel_n == LD_SHARED_REL_MAX) {
				flush_copies(w);
				ld_nfq_flush(&w->nfq);
				SHARED_SET(sh->rel_n, 0);
				w->pend_from = 0;
				finish_releases(w);
			}
			continue;
		}
		w->kernel_held--;
		if (drop || (e.verdict & 0xff) == LD_DROP)
			e.dup = 0;
		if (e.slot != LD_HELD_NO_SLOT) {
			if (e.set & LD_SET_MODIFIED)
				payload = w->store + (size_t)e.slot * LD_PACKET_MAX;
			w->releases[w->nreleases++] = (struct ld_release){ e.slot, e.len, e.dup, e.flags,
									    e.outdev };
		}
		if (drop)
			send_one(w, e.id, LD_DROP, 0, 0, 0, NULL, 0);
		else
			send_one(w, e.id, e.verdict, e.set, e.new_mark, e.new_ct_mark, payload, e.len);
		any = 1;
		/* Stored bytes must outlive the send that carries them. */
		if (w->nreleases == w->cfg.hold_copies || w->nfq.tx_n >= w->nfq.tx_cap - 1 ||
		    sh->rel_n == LD_SHARED_REL_MAX) {
			/* copies first: their log entries must say "sent" before it is cleared */
			flush_copies(w);
			ld_nfq_flush(&w->nfq);
			SHARED_SET(sh->rel_n, 0);
			w->pend_from = 0;
			finish_releases(w);
		}
	}
	flush_copies(w);
	if (any)
		ld_nfq_flush(&w->nfq);
	SHARED_SET(sh->rel_n, 0);
	w->pend_from = 0;
	finish_releases(w);
	arm_timer(w);
	w->c->held_now = w->heap->n;
}

/*
 * Packets we sent ourselves (duplicates, copies of taken-over packets) carry
 * the skip mark. The rules luadivert installs RETURN on it; a hand-written
 * rule may not, and would queue them again: a held copy would be held again,
 * and again. Accept them at once, before the policy sees them (a rate pipe
 * would count their bytes twice), and say so once. Return the packets left.
 */
static uint32_t pass_own_copies(struct ld_worker *w, uint32_t n)
{
	uint32_t mark = w->inject.mark, kept = 0;

	if (!mark)
		return n;
	for (uint32_t i = 0; i < n; i++) {
		struct ld_packet *p = &w->pkts[i];

		if ((p->mark & mark) != mark) {
			if (kept != i)
				w->pkts[kept] = *p;
			kept++;
			continue;
		}
		ld_nfq_verdict(&w->nfq, p->id, LD_PASS, 0, 0, 0, NULL, 0);
		if (w->c->requeued++ == 0)
			ld_log("queue %u: a rule sent one of luadivert's own packets (mark 0x%x) back to the "
			       "queue; accepted it without running the policy. Add -m mark ! --mark "
			       "0x%x/0x%x to that rule (the rules luadivert installs have it)",
			       w->cfg.nfq.queue, (unsigned)p->mark, (unsigned)mark, (unsigned)mark);
	}
	return kept;
}

/*
 * At exit, after the held copies went out: a hand-written rule without the
 * skip-mark exclusion has queued them again. Accept those as in
 * pass_own_copies() (counted in requeued), and give anything else read
 * here the default verdict, as the supervisor's drain would.
 */
static void drain_own_copies(struct ld_worker *w)
{
	int n;

	if (!w->serving)
		return;
	while ((n = ld_nfq_recv_batch(&w->nfq, w->pkts, ld_now_ns())) > 0) {
		uint32_t kept = pass_own_copies(w, (uint32_t)n);

		w->c->received += kept;
		for (uint32_t i = 0; i < kept; i++)
			send_one(w, w->pkts[i].id, w->cfg.nfq.default_verdict, 0, 0, 0, NULL, 0);
		ld_nfq_flush(&w->nfq);
	}
}

static int handle_queue(struct ld_worker *w)
{
	struct ld_shared *sh = w->sh;

	for (int b = 0; b < LD_BATCHES_PER_WAKEUP; b++) {
		uint64_t now;
		int n;

		/* a command waits: the event loop reads it between two batches */
		if (sh->yield)
			return 0;
		sh->rx_from = w->nfq.last_id + 1;
		SHARED_SET(sh->phase, LD_PHASE_RECV);
		now = ld_now_ns();
		n = ld_nfq_recv_batch(&w->nfq, w->pkts, now);
		if (n <= 0) {
			SHARED_SET(sh->phase, LD_PHASE_IDLE);
			if (n < 0) {
				ld_log("queue %u: receive: %s", w->cfg.nfq.queue, strerror(errno));
				return -1;
			}
			return 0;
		}
		for (int i = 0; i < n; i++)
			sh->inhand[i] = w->pkts[i].id;
		sh->inhand_n = (uint32_t)n;
		sh->last_id = w->nfq.last_id;
		sh->seen_any = 1;
		SHARED_SET(sh->busy_since_ns, now);
		SHARED_SET(sh->phase, LD_PHASE_BATCH);
		w->batch.n = pass_own_copies(w, (uint32_t)n);
		w->c->received += w->batch.n;
		if (w->batch.n == 0) {
			SHARED_SET(sh->busy_since_ns, 0);
			SHARED_SET(sh->phase, LD_PHASE_SEND);
			ld_nfq_flush(&w->nfq);
			SHARED_SET(sh->phase, LD_PHASE_IDLE);
			continue;
		}
		w->batch.now_ns = now;
		for (uint32_t i = 0; i < w->batch.n; i++)
			w->c->bytes_received += w->pkts[i].orig_len;
		w->c->batches++;
		if (w->lua) {
			uint32_t errors = ld_lua_dispatch(w->lua);

			w->c->errors += errors;
			w->c->defaulted += errors;
		}
		w->c->errors += ld_loop_guard_batch(&w->loops, w->pkts, w->batch.n, w->cfg.nfq.queue,
						    w->cfg.nfq.default_verdict, &w->lim);
		/* issue 16: divert.OFFLOAD becomes NF_REPEAT with the generation's mark */
		ld_offload_batch(w->pkts, w->batch.n, __atomic_load_n(&sh->offload_gen,
			__ATOMIC_RELAXED), w->c, &w->lim);
		SHARED_SET(sh->busy_since_ns, 0);
		SHARED_SET(sh->phase, LD_PHASE_SEND);
		send_batch_verdicts(w);
		SHARED_SET(sh->phase, LD_PHASE_IDLE);
		ld_obs_batch(w->obs, w->pkts, w->batch.n, now);   /* issue 13: --record */
		release_held(w, now, 0, 0);
		ld_counters_batch_observe(w->c, ld_now_ns() - now);
		if (n < LD_BATCH_MAX)
			return 0;
	}
	return 0;
}

static void ctl_send(struct ld_worker *w, char m)
{
	if (send(w->ctl_fd, &m, 1, MSG_NOSIGNAL) != 1)
		ld_log("worker: telling the supervisor '%c': %s", m, strerror(errno));
}

/* One message; 0 on EOF (the supervisor is gone) or error. */
static int ctl_recv(struct ld_worker *w, char *m)
{
	ssize_t n;

	do
		n = recv(w->ctl_fd, m, 1, 0);
	while (n < 0 && errno == EINTR);
	__atomic_store_n(&w->sh->yield, 0, __ATOMIC_RELEASE);
	return n == 1;
}

/* Q: stop, release held packets, call on_stop. H or EOF: just go. */
static void ctl_stop(struct ld_worker *w, char m)
{
	w->stop = 1;
	w->release_on_exit = m == LD_CTL_QUIT;
}

/* S: save the policy's state for a successor, then wait paused for R, H or Q. */
static void ctl_save(struct ld_worker *w)
{
	struct ld_shared *sh = w->sh;
	size_t len = 0;
	int rc = 0;
	char m;

	if (w->lua)
		rc = ld_lua_save(w->lua, ld_shared_state(sh), sh->state_cap, &len, sh->err,
				 sizeof(sh->err));
	sh->state_len = rc == 0 ? len : 0;
	ctl_send(w, rc == 0 ? LD_CTL_SAVED : LD_CTL_SAVE_FAILED);
	for (;;) {
		if (!ctl_recv(w, &m)) {
			ctl_stop(w, 0);
			return;
		}
		if (m == LD_CTL_RESUME)
			return;
		if (m == LD_CTL_HANDOVER || m == LD_CTL_QUIT) {
			ctl_stop(w, m);
			return;
		}
	}
}

static void handle_ctl(struct ld_worker *w)
{
	char m;

	if (!ctl_recv(w, &m)) {
		ctl_stop(w, 0);
		return;
	}
	if (m == LD_CTL_SAVE)
		ctl_save(w);
	else if (m == LD_CTL_QUIT || m == LD_CTL_HANDOVER)
		ctl_stop(w, m);
}

/* Before serving: V, then on_reload (L) if asked, until G. */
static int await_go(struct ld_worker *w)
{
	struct ld_shared *sh = w->sh;
	char m;

	ctl_send(w, LD_CTL_VALID);
	while (!w->serving) {
		if (!ctl_recv(w, &m)) {
			ctl_stop(w, 0);
			return LD_WEXIT_OK;
		}
		switch (m) {
		case LD_CTL_STATE:
			if (w->lua && ld_lua_restore(w->lua, ld_shared_state(sh), sh->state_len,
						     sh->err, sizeof(sh->err)) < 0)
				return LD_WEXIT_POLICY;
			ctl_send(w, LD_CTL_READY);
			break;
		case LD_CTL_GO:
			w->serving = 1;
			break;
		case LD_CTL_QUIT:
		case LD_CTL_HANDOVER:
			ctl_stop(w, 0);
			return LD_WEXIT_OK;
		default:
			break;
		}
	}
	return LD_WEXIT_OK;
}

int ld_worker_run(struct ld_worker *w)
{
	struct epoll_event evs[8];
	struct ld_busy_poll spin;
	int rc = await_go(w);

	if (rc != LD_WEXIT_OK || w->stop)
		return rc;
	/* The queue is ours now, and so are the held packets: release what is
	 * due, arm the timer for the rest. Held packets still in the kernel
	 * queue forbid batch verdicts (send_batch_verdicts()). */
	w->kernel_held = 0;
	for (uint32_t i = 0; i < w->heap->n; i++)
		w->kernel_held += !w->heap->v[i].taken;
	if (epoll_add(w->epfd, w->nfq.fd) < 0) {
		snprintf(w->sh->err, sizeof(w->sh->err), "epoll_ctl: %s", strerror(errno));
		return LD_WEXIT_SETUP;
	}
	release_held(w, ld_now_ns(), 0, 0);
	ld_busy_poll_init(&spin, w->cfg.busy_poll_us);
	while (!w->stop) {
		int n = epoll_wait(w->epfd, evs, 8, ld_busy_poll_timeout(&spin));

		if (n == 0 && ld_busy_poll_idle(&spin))
			continue;   /* --busy-poll: spinning, nothing yet */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ld_log("epoll_wait: %s", strerror(errno));
			w->failed = 1;
			break;
		}
		for (int i = 0; i < n && !w->stop; i++) {
			int fd = evs[i].data.fd;

			if (fd == w->nfq.fd) {
				ld_busy_poll_active(&spin);
				if (handle_queue(w) < 0) {
					w->failed = 1;
					w->stop = 1;
				}
			} else if (fd == w->tfd) {
				uint64_t ticks;

				if (read(w->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					ld_log_limited(&w->lim, "timerfd: %s", strerror(errno));
				w->armed_ns = 0;
				release_held(w, ld_now_ns(), 0, 0);
			} else if (fd == w->ctl_fd) {
				handle_ctl(w);
			}
		}
	}
	return w->failed ? LD_WEXIT_SETUP : LD_WEXIT_OK;
}

int ld_worker_stop(struct ld_worker *w)
{
	if (!w->release_on_exit)
		return 0;   /* handed over (H) or orphaned: the held packets stay shared */
	release_held(w, 0, 1, w->cfg.held_on_exit == LD_HELD_DROP);
	drain_own_copies(w);   /* issue 17: our copies a hand-written rule queued again */
	ld_log_limit_flush(&w->lim);
	/* issue 14: on_stop while the receive buffers are mapped (it may read
	 * kept packets); an error in it is a failed run (exit status 1) */
	return ld_lua_stop(w->lua);
}

void ld_worker_free(struct ld_worker *w)
{
	if (!w)
		return;
	ld_log_limit_flush(&w->lim);
	/* on_stop ran in ld_worker_stop() if the queue stops; a worker that
	 * hands over to a successor, or dies loading, calls none */
	ld_lua_discard(w->lua);
	ld_obs_free(w->obs, ld_now_ns(), NULL);   /* the supervisor's observer writes the files */
	free(w->releases);
	ld_inject_close(&w->inject);
	ld_takeover_free(&w->take);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->tfd >= 0)
		close(w->tfd);
	free(w);
}

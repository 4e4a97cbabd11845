// SPDX-License-Identifier: MIT
/*
 * worker_hold.c - held packets (worker_priv.h). A held packet waits in the
 * kernel queue and its id in the timer heap; one this host sent (output,
 * or postrouting without an input device) is taken over: its bytes are
 * copied into the hold store and the original is dropped, so the sender's
 * socket is not throttled (hold_takeover.h). At release the kernel gets
 * the verdict, or the copy leaves through the raw socket. The release log
 * in the shared region says what went out, for a supervisor whose worker
 * died halfway (shared_state.c).
 */
#include "worker_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>

#include "payload_check.h"

/* Arm the timer a lead before the first due time (timer_lead.h), or disarm it. */
static void arm_timer(struct ld_worker *w)
{
	const struct ld_held *top = ld_heap_peek(w->heap);
	uint64_t due = top ? ld_timer_lead_fire_at(&w->lead, top->due_ns) : 0;
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
	/* a time already past fires at once (worker_timer_fired() learns nothing from it) */
	w->armed_from_ns = due ? ld_now_ns() : 0;
	if (w->armed_from_ns < due)
		w->armed_from_ns = due;
}

/* A length the core may copy or send: whole, and within the buffer it lies in. */
int worker_len_ok(const struct ld_packet *p)
{
	return !(p->flags & LD_PKT_TRUNCATED) && p->len > 0 && p->len <= p->cap &&
	       p->len <= LD_PACKET_MAX;
}

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
int worker_hold_packet(struct ld_worker *w, struct ld_packet *p)
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
	/* The same length checks as the immediate path (worker_payload_of()). */
	if ((e.set & LD_SET_MODIFIED) && !worker_payload_of(w, p))
		e.set &= ~(uint32_t)LD_SET_MODIFIED;
	if (e.dup && !worker_len_ok(p))
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
const uint8_t *worker_payload_of(struct ld_worker *w, const struct ld_packet *p)
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
void worker_inject_copies(struct ld_worker *w, uint8_t *data, uint32_t len, uint32_t dup,
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

/* After the send that carried them: inject held packets' copies, free their slots. */
static void finish_releases(struct ld_worker *w)
{
	while (w->nreleases) {
		struct ld_release *r = &w->releases[--w->nreleases];

		if (r->dup)
			worker_inject_copies(w, w->store + (size_t)r->slot * LD_PACKET_MAX, r->len, r->dup,
				      r->flags, r->outdev);
		w->store_free[w->sh->store_nfree++] = r->slot;
	}
}

/*
 * The timer fired (@fired: its expiry was read, so this wake-up is its own).
 * It was armed a lead early: learn from how late it woke; when the first
 * due time is still ahead, within the lead, the event loop polls until
 * then (w->poll_until_ns; worker_poll_due()), else release now.
 */
void worker_timer_fired(struct ld_worker *w, int fired)
{
	const struct ld_held *top = ld_heap_peek(w->heap);
	uint64_t now = ld_now_ns();

	/* A timer armed for a time already past says nothing of the latency. */
	if (fired && w->armed_ns && w->armed_from_ns == w->armed_ns)
		ld_timer_lead_observe(&w->lead, w->armed_ns, now);
	w->armed_ns = 0;
	w->poll_until_ns = top ? ld_timer_lead_poll_until(&w->lead, top->due_ns, now) : 0;
	if (w->poll_until_ns) {
		w->poll_from_ns = now;
		return;
	}
	worker_release_held(w, now, 0, 0);
}

/* Polling for a due time (worker_timer_fired()): release once it has come. */
void worker_poll_due(struct ld_worker *w)
{
	uint64_t now = ld_now_ns();

	if (now < w->poll_until_ns)
		return;
	ld_timer_lead_polled(&w->lead, w->poll_from_ns, now);
	w->poll_until_ns = 0;
	worker_release_held(w, now, 0, 0);
}

/*
 * Verdict every held packet due by @now (all of them when @all). Each one
 * goes into the shared release log before it leaves the heap, and the log
 * is emptied after the send: if this process dies in between, the
 * supervisor sends those verdicts again (a second one is refused).
 */
void worker_release_held(struct ld_worker *w, uint64_t now, int all, int drop)
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
			worker_send_one(w, e.id, LD_DROP, 0, 0, 0, NULL, 0);
		else
			worker_send_one(w, e.id, e.verdict, e.set, e.new_mark, e.new_ct_mark, payload, e.len);
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

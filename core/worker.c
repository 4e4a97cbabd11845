// SPDX-License-Identifier: MIT
/*
 * worker.c - the event loop of one queue.
 *
 *   epoll ─┬─ netlink socket readable → receive a batch (nfq_recv.c) → one Lua
 *          │                            call (lua_host.c) → verdicts, one sendmsg
 *          │                            (nfq_verdict.c) → next batch
 *          ├─ timerfd                  → release held packets that are due
 *          │                            (worker_hold.c)
 *          └─ control socket           → go / save / hand over / stop
 *                                        (worker_ctl.c, worker.h)
 *
 * It runs in a worker process; the supervisor owns signals and reloads.
 * Around each batch it notes in the shared region which ids it has in hand
 * and since when the policy runs: if the process hangs or dies there, the
 * supervisor gives those packets the default verdict (shared_state.c).
 */
#include "worker_priv.h"

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
	/* Held packets are released by a timerfd, armed a lead early; the
	 * default 50 us timer slack would add to the release error
	 * (docs/shaping.md measures it). */
	ld_timer_lead_init(&w->lead, cfg->timer_lead_us);
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

void worker_send_one(struct ld_worker *w, uint32_t id, uint32_t verdict, uint32_t set,
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
		r = worker_hold_packet(w, p);
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
		payload = worker_payload_of(w, p);
		worker_send_one(w, p->id, p->verdict, p->set, p->new_mark, p->new_ct_mark, payload,
			 p->len);
	}
	if (have_accept)
		ld_nfq_verdict_batch(&w->nfq, max_accept, LD_PASS);
	ld_nfq_flush(&w->nfq);
	/* Copies go out after the originals' verdicts; a dropped packet has none. */
	for (uint32_t i = 0; i < w->batch.n; i++) {
		struct ld_packet *p = &w->pkts[i];

		if (p->dup && !(p->set & LD_SET_HOLD) && (p->verdict & 0xff) != LD_DROP && worker_len_ok(p))
			worker_inject_copies(w, p->data, p->len, p->dup, p->flags, p->outdev);
	}
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
			worker_send_one(w, w->pkts[i].id, w->cfg.nfq.default_verdict, 0, 0, 0, NULL, 0);
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
		n = ld_nfq_recv_batch(&w->nfq, w->pkts, 0);
		if (n <= 0) {
			SHARED_SET(sh->phase, LD_PHASE_IDLE);
			if (n < 0) {
				ld_log("queue %u: receive: %s", w->cfg.nfq.queue, strerror(errno));
				return -1;
			}
			return 0;
		}
		/* The batch's time is read after the receive: a packet that came
		 * in while this process was preempted between a clock read and
		 * the recvmmsg would carry a time from before it existed, and its
		 * hold would end early (found by test_timer_lead.sh: 130 us). */
		now = ld_now_ns();
		for (int i = 0; i < n; i++) {
			w->pkts[i].tstamp_ns = now;
			sh->inhand[i] = w->pkts[i].id;
		}
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
		worker_release_held(w, now, 0, 0);
		ld_counters_batch_observe(w->c, ld_now_ns() - now);
		if (n < LD_BATCH_MAX)
			return 0;
	}
	return 0;
}

int ld_worker_run(struct ld_worker *w)
{
	struct epoll_event evs[8];
	struct ld_busy_poll spin;
	int rc = worker_await_go(w);

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
	worker_release_held(w, ld_now_ns(), 0, 0);
	ld_busy_poll_init(&spin, w->cfg.busy_poll_us);
	while (!w->stop) {
		/* woken a lead before a due time: poll until it (timer_lead.h) */
		int n = epoll_wait(w->epfd, evs, 8, w->poll_until_ns ? 0 : ld_busy_poll_timeout(&spin));

		if (w->poll_until_ns)
			worker_poll_due(w);
		if (n == 0 && (ld_busy_poll_idle(&spin) || w->poll_until_ns))
			continue;   /* --busy-poll or a due time ahead: polling, nothing yet */
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
				ssize_t got = read(w->tfd, &ticks, sizeof(ticks));

				if (got < 0 && errno != EAGAIN)
					ld_log_limited(&w->lim, "timerfd: %s", strerror(errno));
				worker_timer_fired(w, got == (ssize_t)sizeof(ticks));
			} else if (fd == w->ctl_fd) {
				worker_handle_ctl(w);
			}
		}
	}
	return w->failed ? LD_WEXIT_SETUP : LD_WEXIT_OK;
}

int ld_worker_stop(struct ld_worker *w)
{
	if (!w->release_on_exit)
		return 0;   /* handed over (H) or orphaned: the held packets stay shared */
	worker_release_held(w, 0, 1, w->cfg.held_on_exit == LD_HELD_DROP);
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

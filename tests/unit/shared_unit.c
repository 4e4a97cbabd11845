// SPDX-License-Identifier: MIT
/*
 * shared_unit.c - what the supervisor does with the shared region after a
 * worker died (core/shared_state.c), without a kernel: the verdicts it
 * sends are recorded by stand-ins for ld_nfq_verdict/ld_nfq_flush.
 *   - ids in hand get the default verdict, except those already held;
 *   - the release log is sent again with each packet's own verdict and bytes;
 *   - the heap keeps one entry per id, drops a stale entry whose copy slot a
 *     newer packet owns, and the free-slot stack is rebuilt without leaks;
 *   - killed inside the receive: one batch's worth of ids from rx_from, and
 *     those ids are marked early (the next worker does not take them over);
 *   - release_all gives every held packet its verdict (or drop);
 *   - taken-over copies in the hold store (test_recover_copies): one that was
 *     released and logged sent is never sent again, one logged unsent goes
 *     back into the heap, a stale heap entry of a popped copy goes, chunks of
 *     a put whose entry was never pushed are freed, the free list is rebuilt
 *     whatever state it was left in, and a taken packet in hand gets DROP.
 *   - killed inside (or just after) a sendmmsg of copies (test_recover_in_flight):
 *     the messages the kernel wrote a msg_len for are marked sent and stay
 *     gone, the one it did not send goes back into the heap, and a tag that
 *     names no release-log entry is ignored.
 * Built with ASan+UBSan (Makefile: build/unit/). Prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/hold_store.c"
#include "../../core/log.c"
#include "../../core/shared_state.c"
#include "../../core/timer_heap.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* Stand-ins for core/nfq.c: record what would be sent. */
struct sent { uint32_t id, verdict; const uint8_t *payload; };
static struct sent sent[512];
static uint32_t nsent, nflush;

void ld_nfq_verdict(struct ld_nfq *q, uint32_t id, uint32_t verdict, uint32_t set,
		    uint32_t mark, uint32_t ct_mark, const uint8_t *payload, uint32_t len)
{
	(void)q; (void)set; (void)mark; (void)ct_mark; (void)len;
	if (nsent < 512)
		sent[nsent++] = (struct sent){ id, verdict, payload };
}

void ld_nfq_flush(struct ld_nfq *q)
{
	(void)q;
	nflush++;
}

static const struct sent *find(uint32_t id)
{
	for (uint32_t i = 0; i < nsent; i++)
		if (sent[i].id == id)
			return &sent[i];
	return NULL;
}

static int heap_has(struct ld_shared *sh, uint32_t id)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < sh->heap.n; i++)
		k += sh->heap.v[i].id == id;
	return (int)k;
}

static void test_recover(void)
{
	struct ld_shared *sh = ld_shared_create(16, 4, 0, 4096);
	struct ld_nfq q = { .fd = -1 };
	struct ld_held e = { .due_ns = 100, .verdict = LD_PASS, .slot = LD_HELD_NO_SLOT };
	uint32_t *fs;

	CHECK(sh != NULL);
	if (!sh)
		return;
	fs = ld_shared_free_stack(sh);
	/* held: 11 (no slot), 20 twice (a half-done swap), 30 in slot 0 */
	e.id = 11; ld_heap_push(&sh->heap, &e);
	e.id = 20; ld_heap_push(&sh->heap, &e);
	e.id = 20; ld_heap_push(&sh->heap, &e);
	/* a stale entry (3, released before) still names slot 0, now 30's */
	e.id = 3; e.slot = 0; e.set = LD_SET_MODIFIED; e.len = 10; ld_heap_push(&sh->heap, &e);
	e.id = 30; ld_heap_push(&sh->heap, &e);
	/* the dead worker had taken slots 0 and 1 off the stack, and leaked 1 */
	sh->store_nfree = 2;
	fs[0] = 3; fs[1] = 2;
	/* released 5 (slot 2, changed bytes), maybe not sent */
	sh->rel[0] = (struct ld_held){ .id = 5, .verdict = LD_DROP, .slot = 2,
				       .set = LD_SET_MODIFIED, .len = 20 };
	sh->rel_n = 1;
	/* in hand: 10, 11 (held meanwhile), 12 */
	sh->inhand[0] = 10; sh->inhand[1] = 11; sh->inhand[2] = 12;
	sh->inhand_n = 3;
	sh->phase = LD_PHASE_BATCH;

	nsent = 0;
	CHECK(ld_shared_recover(sh, &q, LD_PASS) == 2);
	CHECK(find(10) && find(10)->verdict == LD_PASS && !find(10)->payload);
	CHECK(find(12) && find(12)->verdict == LD_PASS);
	CHECK(!find(11));                         /* held: the next worker releases it */
	CHECK(find(5) && find(5)->verdict == LD_DROP &&
	      find(5)->payload == ld_shared_store(sh) + 2 * (size_t)LD_PACKET_MAX);
	CHECK(nsent == 3);
	CHECK(sh->c.passed == 2 && sh->c.recovered == 2);
	CHECK(sh->rel_n == 0 && sh->inhand_n == 0 && sh->phase == LD_PHASE_IDLE);
	CHECK(heap_has(sh, 20) == 1 && heap_has(sh, 11) == 1 && heap_has(sh, 30) == 1);
	CHECK(heap_has(sh, 3) == 0);              /* stale: slot 0 is 30's */
	CHECK(sh->heap.n == 3);
	/* slots 1, 2, 3 free (1 was leaked, 2 released), 0 in use */
	CHECK(sh->store_nfree == 3);
	for (uint32_t i = 0; i < sh->store_nfree; i++)
		CHECK(fs[i] != 0 && fs[i] < 4);
	/* the heap still pops in order */
	{
		struct ld_held out;
		uint64_t last = 0;
		int ordered = 1;

		while (sh->heap.n) {
			ld_heap_pop(&sh->heap, &out);
			ordered &= out.seq >= last;
			last = out.seq;
		}
		CHECK(ordered);
	}

	/* killed inside recvmmsg: one batch's worth from rx_from */
	nsent = 0;
	sh->phase = LD_PHASE_RECV;
	sh->rx_from = 100;
	CHECK(ld_shared_recover(sh, &q, LD_DROP) == LD_BATCH_MAX);
	CHECK(find(100) && find(100 + LD_BATCH_MAX - 1) && !find(100 + LD_BATCH_MAX));
	CHECK(find(100)->verdict == LD_DROP);
	/* the next worker takes none of those over: they may wait in its socket */
	CHECK(!ld_shared_early(sh, 99) && ld_shared_early(sh, 100));
	CHECK(ld_shared_early(sh, 100 + LD_BATCH_MAX - 1) && !ld_shared_early(sh, 100 + LD_BATCH_MAX));

	/* at exit: release_all */
	e = (struct ld_held){ .id = 40, .due_ns = 5, .verdict = LD_PASS, .slot = LD_HELD_NO_SLOT };
	ld_heap_push(&sh->heap, &e);
	e.id = 41;
	ld_heap_push(&sh->heap, &e);
	nsent = 0;
	CHECK(ld_shared_release_all(sh, &q, 0) == 2);
	CHECK(find(40) && find(40)->verdict == LD_PASS && find(41));
	e.id = 42;
	ld_heap_push(&sh->heap, &e);
	nsent = 0;
	CHECK(ld_shared_release_all(sh, &q, 1) == 1 && find(42)->verdict == LD_DROP);
	ld_shared_destroy(sh);
}

static void test_recover_copies(void)
{
	struct ld_shared *sh = ld_shared_create(16, 0, 64 * 1024, 4096);
	struct ld_nfq q = { .fd = -1 };
	struct ld_store *st;
	struct ld_held e = { .due_ns = 100, .verdict = LD_PASS, .slot = LD_HELD_NO_SLOT,
			     .taken = 1 };
	static uint8_t in[4000], out[4000];
	uint32_t ha, hb, hd, he, total;

	CHECK(sh != NULL && ld_shared_hold_store(sh) != NULL);
	if (!sh)
		return;
	st = ld_shared_hold_store(sh);
	total = st->nfree;
	for (uint32_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	/* held: 1 and 2 */
	ha = ld_store_put(st, in, 1000);
	hb = ld_store_put(st, in + 1, 3000);
	e.id = 1; e.copy = ha; e.len = 1000; ld_heap_push(&sh->heap, &e);
	e.id = 2; e.copy = hb; e.len = 3000; ld_heap_push(&sh->heap, &e);
	/* put, never pushed: the worker died in between */
	CHECK(ld_store_put(st, in, 600) != LD_STORE_NONE);
	/* 4: released, logged, freed, not sent yet */
	hd = ld_store_put(st, in + 2, 1500);
	he = ld_store_put(st, in + 3, 700);
	e.id = 4; e.copy = hd; e.len = 1500;
	sh->rel[0] = e;
	ld_store_free(st, hd);   /* no put comes between a free and the send (worker.c) */
	/* 5: released and sent, but still in the heap (killed mid-pop) */
	e.id = 5; e.copy = he; e.len = 700; ld_heap_push(&sh->heap, &e);
	sh->rel[1] = e;
	sh->rel[1].taken = 2;
	ld_store_free(st, he);
	sh->rel_n = 2;
	/* a free cut short: the list and counts say nonsense */
	st->free_head = ha;
	st->nfree = 3;
	/* in hand: 1 (a taken copy; its DROP may be unsent) and 9 */
	sh->phase = LD_PHASE_SEND;
	sh->inhand[0] = 1;
	sh->inhand[1] = 9;
	sh->inhand_n = 2;
	nsent = 0;
	CHECK(ld_shared_recover(sh, &q, LD_PASS) == 1);
	CHECK(find(1) && find(1)->verdict == LD_DROP);
	CHECK(find(9) && find(9)->verdict == LD_PASS);
	CHECK(!find(2) && !find(4) && !find(5));   /* copies are never verdicts */
	CHECK(heap_has(sh, 1) == 1 && heap_has(sh, 2) == 1 && heap_has(sh, 4) == 1);
	CHECK(heap_has(sh, 5) == 0);
	CHECK(sh->heap.n == 3);
	for (uint32_t i = 0; i < sh->heap.n; i++)
		CHECK(sh->heap.v[i].taken == 1);
	/* chunks: 1000 -> 2, 3000 -> 6, 1500 -> 3 */
	CHECK(st->nfree == total - 11);
	CHECK(st->stored == 3);
	ld_store_get(st, hd, 1500, out);
	CHECK(memcmp(out, in + 2, 1500) == 0);
	/* every free chunk can be taken, and none overwrites a kept copy */
	while (ld_store_put(st, in + 9, 512) != LD_STORE_NONE)
		;
	CHECK(st->nfree == 0);
	ld_store_get(st, ha, 1000, out);
	CHECK(memcmp(out, in, 1000) == 0);
	ld_store_get(st, hb, 3000, out);
	CHECK(memcmp(out, in + 1, 3000) == 0);
	ld_store_get(st, hd, 1500, out);
	CHECK(memcmp(out, in + 2, 1500) == 0);
	ld_shared_destroy(sh);
}

static void test_recover_in_flight(void)
{
	struct ld_shared *sh = ld_shared_create(16, 0, 64 * 1024, 4096);
	struct ld_nfq q = { .fd = -1 };
	struct ld_held e = { .due_ns = 100, .verdict = LD_PASS, .slot = LD_HELD_NO_SLOT,
			     .taken = 1, .len = 500 };
	struct ld_inject_log *log;
	struct ld_store *st;
	static uint8_t in[500];

	CHECK(sh != NULL && ld_shared_hold_store(sh) != NULL);
	if (!sh)
		return;
	st = ld_shared_hold_store(sh);
	log = &sh->sendlog;
	/* 14 still held; 11, 12, 13 released and logged, their copies queued
	 * and freed (no put comes between); 12 also still in the heap (killed
	 * mid-pop) */
	e.id = 14;
	e.copy = ld_store_put(st, in, sizeof(in));
	ld_heap_push(&sh->heap, &e);
	for (uint32_t i = 0; i < 3; i++) {
		e.id = 11 + i;
		e.copy = ld_store_put(st, in, sizeof(in));
		if (i == 1)
			ld_heap_push(&sh->heap, &e);
		sh->rel[i] = e;
		ld_store_free(st, e.copy);
	}
	sh->rel_n = 3;
	/* the sendmmsg in flight: the kernel sent 11 and 12, not 13 */
	for (uint32_t i = 0; i < 4; i++) {
		log->tag[i] = i;
		log->mm[i].msg_len = i < 2 ? 500 : 0;
	}
	log->tag[3] = 200;   /* names no log entry: ignored */
	log->mm[3].msg_len = 500;
	log->n = 4;
	CHECK(ld_shared_recover(sh, &q, LD_PASS) == 0);
	CHECK(log->n == 0);
	CHECK(heap_has(sh, 11) == 0 && heap_has(sh, 12) == 0);
	CHECK(heap_has(sh, 13) == 1 && heap_has(sh, 14) == 1);
	CHECK(sh->heap.n == 2);
	CHECK(st->stored == 2);
	/* a log with nothing in flight marks nothing */
	sh->rel[0] = e;
	sh->rel_n = 1;
	log->mm[0].msg_len = 500;
	CHECK(ld_shared_settle_sends(sh) == 0 && sh->rel[0].taken == 1);
	ld_shared_destroy(sh);
}

int main(void)
{
	test_recover();
	test_recover_copies();
	test_recover_in_flight();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

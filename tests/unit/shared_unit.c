// SPDX-License-Identifier: MIT
/*
 * shared_unit.c - what the supervisor does with the shared region after a
 * worker died (core/shared_state.c), without a kernel: the verdicts it
 * sends are recorded by stand-ins for ld_nfq_verdict/ld_nfq_flush.
 *   - ids in hand get the default verdict, except those already held;
 *   - the release log is sent again with each packet's own verdict and bytes;
 *   - the heap keeps one entry per id, drops a stale entry whose copy slot a
 *     newer packet owns, and the free-slot stack is rebuilt without leaks;
 *   - killed inside the receive: one batch's worth of ids from rx_from;
 *   - release_all gives every held packet its verdict (or drop).
 * Built with ASan+UBSan (Makefile: build/unit/). Prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	struct ld_shared *sh = ld_shared_create(16, 4, 4096);
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

int main(void)
{
	test_recover();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

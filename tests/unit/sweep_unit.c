// SPDX-License-Identifier: MIT
/*
 * sweep_unit.c - the shutdown catch-all verdict (issue 14, item 7) against
 * a model of the kernel's batch verdict (nfqnl_recv_verdict_batch): the
 * queue is walked oldest first and the walk stops at the first id after
 * max_id in serial arithmetic. Every packet still queued must be covered,
 * the ones older than the newest id read included, across id wrap.
 * Prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/counters.c"
#include "../../core/log.c"
#include "../../core/nfq.c"
#include "../../core/nfq_recv.c"
#include "../../core/nfq_verdict.c"

static int passed, failed;

#define CHECK(cond, ...) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: ", __FILE__, __LINE__); \
	       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

/* the kernel's nfq_id_after() */
static int id_after(uint32_t id, uint32_t max)
{
	return (int32_t)(id - max) > 0;
}

/* How many of the queued ids first, first+1, ..., first+n-1 (oldest first)
 * one batch verdict with @max takes before the walk stops. */
static uint32_t covered(uint32_t first, uint32_t n, uint32_t max)
{
	for (uint32_t i = 0; i < n; i++)
		if (id_after(first + i, max))
			return i;
	return n;
}

int main(void)
{
	static const uint32_t lasts[] = { 0, 1, 1000, 0x7ffffff0u, 0x80000005u, 0xfffffff0u,
					  0xffffffffu };
	const uint32_t maxlen = 4096;

	for (size_t k = 0; k < sizeof(lasts) / sizeof(lasts[0]); k++) {
		uint32_t last = lasts[k], max = ld_nfq_sweep_id(last, maxlen);

		/* a held or lost packet 1000 ids older, up to a full queue newer */
		CHECK(covered(last - 1000, 1001 + maxlen, max) == 1001 + maxlen,
		      "last_id %u: %u of %u queued packets covered", last,
		      covered(last - 1000, 1001 + maxlen, max), 1001 + maxlen);
		/* very old: 2^30 ids before the newest read */
		CHECK(covered(last - (1u << 30), 1, max) == 1, "last_id %u: 2^30 older", last);
		/* nothing beyond a full queue after last_id is needed, nothing
		 * the kernel could still assign later is claimed in advance
		 * beyond that */
		CHECK(id_after(last + maxlen + 1, max), "last_id %u: window ends at last + maxlen",
		      last);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

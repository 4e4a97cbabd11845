// SPDX-License-Identifier: MIT
/*
 * shared_copies.c - the supervisor sends the taken-over copies no worker
 * released (at exit, after the worker missed --stop-timeout or died while
 * stopping). Kept apart from shared_state.c, which needs no raw sockets
 * (its unit test runs without them).
 */
#include <stdlib.h>
#include <string.h>

#include "hold_takeover.h"
#include "log.h"
#include "shared_state.h"

static int by_seq(const void *a, const void *b)
{
	const struct ld_held *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

uint32_t ld_shared_send_copies(struct ld_shared *sh, int drop)
{
	struct ld_store *st = ld_shared_hold_store(sh);
	struct ld_heap *h = &sh->heap;
	struct ld_takeover t;
	struct ld_inject inj = { .fd4 = -1, .fd6 = -1 };
	struct ld_held *all;
	uint32_t n = h->n, done = 0, rest = 0, failed = 0;
	char err[256];

	if (!st || !n)
		return 0;
	all = malloc((size_t)n * sizeof(*all));
	if (!all) {
		ld_log("held copies at exit: out of memory; not sent");
		return 0;
	}
	/* due order: pop them all; kernel-held ones go back, in insertion order */
	for (uint32_t i = 0; i < n; i++)
		ld_heap_pop(h, &all[i]);
	if (!drop) {
		if (ld_takeover_init(&t, st, err, sizeof(err)) < 0 ||
		    ld_inject_open(&inj, LD_INJECT_MARK_DEFAULT, err, sizeof(err)) < 0) {
			ld_log("held copies at exit: %s; dropping them", err);
			drop = 1;
		}
	} else {
		memset(&t, 0, sizeof(t));
		t.ioctl_fd = -1;
		t.store = st;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct ld_held *e = &all[i];
		uint32_t times = (drop || (e->verdict & 0xff) == LD_DROP) ? 0 : 1 + e->dup;
		uint32_t f = 0;

		if (!e->taken) {
			all[rest++] = *e;
			continue;
		}
		ld_takeover_release(&t, &inj, e->copy, e->len, e->outdev, e->flags, times,
				    ld_now_ns(), LD_INJECT_NO_TAG, &f);
		failed += f;
		if (times) {
			sh->c.passed++;
			sh->c.injected += e->dup;
		} else {
			sh->c.dropped++;
		}
		done++;
	}
	if (!drop) {
		uint32_t f = 0;

		ld_takeover_flush(&t, &inj, &f);
		failed += f;
		ld_takeover_free(&t);
	}
	ld_inject_close(&inj);
	sh->c.inject_errors += failed;
	if (failed)
		ld_log("held copies at exit: %u not sent", failed);
	qsort(all, rest, sizeof(*all), by_seq);
	for (uint32_t i = 0; i < rest; i++)
		ld_heap_push(h, &all[i]);
	free(all);
	return done;
}

// SPDX-License-Identifier: MIT
/* loop_guard.c - break REPEAT and queue-to-self loops (see loop_guard.h). */
#include "loop_guard.h"

#include <string.h>

enum {
	NF_QUEUE_BYPASS = 0x8000,   /* NF_VERDICT_FLAG_QUEUE_BYPASS */
	PROBE_MAX = 8,              /* slots tried before evicting */
};

static int loops_back(uint32_t verdict, uint16_t queue)
{
	if ((verdict & 0xff) == LD_REPEAT)
		return 1;
	return (verdict & 0xff) == LD_QUEUE && (verdict >> 16) == queue;
}

static uint64_t mix(uint64_t h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* What identifies a packet across its passes (never 0). */
static uint64_t packet_key(const struct ld_packet *p)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint8_t *d = p->data;
	uint32_t len = p->len, l4;

	h = mix(h, &p->hook, 1);
	h = mix(h, (const uint8_t *)&p->orig_len, sizeof(p->orig_len));
	if (len >= 20 && (d[0] >> 4) == 4) {
		h = mix(h, d + 4, 2);          /* IP id */
		h = mix(h, d + 9, 1);          /* protocol */
		h = mix(h, d + 12, 8);         /* addresses */
		l4 = (uint32_t)(d[0] & 15) * 4;
	} else if (len >= 40 && (d[0] >> 4) == 6) {
		h = mix(h, d + 1, 3);          /* flow label (and part of the class) */
		h = mix(h, d + 6, 1);          /* next header */
		h = mix(h, d + 8, 32);         /* addresses */
		l4 = 40;
	} else {
		return mix(h, d, len < 32 ? len : 32) | 1;
	}
	if (l4 < len)
		h = mix(h, d + l4, len - l4 < 24 ? len - l4 : 24);
	return h | 1;
}

static struct ld_loop_entry *find(struct ld_loop_guard *g, uint64_t key, int insert)
{
	uint32_t at = (uint32_t)(key >> 32) & (LD_LOOP_SLOTS - 1);

	for (uint32_t i = 0; i < PROBE_MAX; i++) {
		struct ld_loop_entry *e = &g->e[(at + i) & (LD_LOOP_SLOTS - 1)];

		if (e->key == key)
			return e;
		if (insert && e->key == 0) {
			e->key = key;
			e->passes = 0;
			g->used++;
			return e;
		}
	}
	if (!insert)
		return NULL;
	/* full around here: the oldest loop forgets its count */
	g->e[at].key = key;
	g->e[at].passes = 0;
	return &g->e[at];
}

static void forget(struct ld_loop_guard *g, struct ld_loop_entry *e)
{
	e->key = 0;
	e->passes = 0;
	g->used--;
}

uint32_t ld_loop_guard_batch(struct ld_loop_guard *g, struct ld_packet *pkts, uint32_t n,
			     uint16_t queue, uint32_t default_verdict, struct ld_log_limit *lim)
{
	uint32_t broken = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct ld_packet *p = &pkts[i];
		struct ld_loop_entry *e;

		if (!loops_back(p->verdict, queue)) {
			/* a packet leaving a loop: forget it (nothing to do when
			 * no loop is in flight, the usual case) */
			if (g->used && p->data && (e = find(g, packet_key(p), 0)))
				forget(g, e);
			continue;
		}
		if (!p->data)
			continue;
		e = find(g, packet_key(p), 1);
		if (++e->passes <= LD_LOOP_MAX)
			continue;
		ld_log_limited(lim, "packet id %u looped %u times (verdict %s): it gets the "
			       "default verdict", p->id, e->passes - 1,
			       (p->verdict & 0xff) == LD_REPEAT ? "REPEAT" : "queue to this queue");
		forget(g, e);
		p->verdict = default_verdict;
		p->set &= ~(uint32_t)LD_SET_HOLD;
		broken++;
	}
	return broken;
}

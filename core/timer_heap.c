// SPDX-License-Identifier: MIT
/* timer_heap.c - binary min-heap of held packets keyed by (due_ns, seq). */
#include "timer_heap.h"

#include <errno.h>
#include <stdlib.h>

static int held_before(const struct ld_held *a, const struct ld_held *b)
{
	if (a->due_ns != b->due_ns)
		return a->due_ns < b->due_ns;
	return a->seq < b->seq;
}

int ld_heap_init(struct ld_heap *h, uint32_t cap)
{
	h->n = 0;
	h->seq = 0;
	h->cap = cap;
	h->v = calloc(cap ? cap : 1, sizeof(*h->v));
	return h->v ? 0 : -1;
}

void ld_heap_init_at(struct ld_heap *h, struct ld_held *mem, uint32_t cap)
{
	h->n = 0;
	h->seq = 0;
	h->cap = cap;
	h->v = mem;
}

void ld_heap_free(struct ld_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

int ld_heap_push(struct ld_heap *h, const struct ld_held *e)
{
	uint32_t i, parent;

	if (h->n >= h->cap) {
		errno = ENOSPC;
		return -1;
	}
	i = h->n++;
	h->v[i] = *e;
	h->v[i].seq = h->seq++;
	while (i > 0) {
		parent = (i - 1) / 2;
		if (!held_before(&h->v[i], &h->v[parent]))
			break;
		struct ld_held t = h->v[i];
		h->v[i] = h->v[parent];
		h->v[parent] = t;
		i = parent;
	}
	return 0;
}

const struct ld_held *ld_heap_peek(const struct ld_heap *h)
{
	return h->n ? &h->v[0] : NULL;
}

void ld_heap_pop(struct ld_heap *h, struct ld_held *out)
{
	uint32_t i = 0, l, r, m;

	*out = h->v[0];
	h->v[0] = h->v[--h->n];
	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < h->n && held_before(&h->v[l], &h->v[m]))
			m = l;
		if (r < h->n && held_before(&h->v[r], &h->v[m]))
			m = r;
		if (m == i)
			break;
		struct ld_held t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
}

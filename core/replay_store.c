// SPDX-License-Identifier: MIT
/* replay_store.c - size-classed slots, carved from large chunks, for held frames. */
#include "replay_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t slot_size(uint32_t c)
{
	return (uint32_t)1 << (LD_RSTORE_MIN_SHIFT + c);
}

void ld_rstore_init(struct ld_rstore *s)
{
	memset(s, 0, sizeof(*s));
}

/* Add one chunk to class @c, growing the chunk and free arrays by doubling. */
static int class_grow(struct ld_rstore_class *k, uint32_t c, size_t *bytes)
{
	uint32_t size = slot_size(c);
	uint32_t per = LD_RSTORE_CHUNK / size >= 4 ? LD_RSTORE_CHUNK / size : 4;
	uint64_t total = (uint64_t)(k->nchunk + 1) * per;
	uint8_t *mem;

	if (total >= (1u << LD_RSTORE_SLOT_BITS)) {
		errno = ENOMEM;
		return -1;
	}
	if (k->nchunk == k->chunk_cap) {
		uint32_t cap = k->chunk_cap ? 2 * k->chunk_cap : 16;
		uint8_t **v = realloc(k->chunk, cap * sizeof(*v));
		uint32_t *f;

		if (!v)
			return -1;
		k->chunk = v;
		/* the free list can hold every slot of every chunk we may add */
		f = realloc(k->free, (size_t)cap * per * sizeof(*f));
		if (!f)
			return -1;
		k->free = f;
		k->chunk_cap = cap;
	}
	mem = malloc((size_t)per * size);
	if (!mem)
		return -1;
	k->per_chunk = per;
	k->chunk[k->nchunk++] = mem;
	*bytes += (size_t)per * size;
	return 0;
}

uint8_t *ld_rstore_get(struct ld_rstore *s, size_t size, uint32_t *slot)
{
	struct ld_rstore_class *k;
	uint32_t c = 0, i;

	while (c < LD_RSTORE_CLASSES && slot_size(c) < size)
		c++;
	if (c == LD_RSTORE_CLASSES) {
		errno = E2BIG;
		return NULL;
	}
	k = &s->cls[c];
	if (k->nfree) {
		i = k->free[--k->nfree];
	} else {
		if (k->used == k->nchunk * k->per_chunk && class_grow(k, c, &s->bytes))
			return NULL;
		i = k->used++;
	}
	*slot = c << LD_RSTORE_SLOT_BITS | i;
	return ld_rstore_ptr(s, *slot);
}

uint8_t *ld_rstore_ptr(const struct ld_rstore *s, uint32_t slot)
{
	uint32_t c = slot >> LD_RSTORE_SLOT_BITS;
	uint32_t i = slot & ((1u << LD_RSTORE_SLOT_BITS) - 1);
	const struct ld_rstore_class *k = &s->cls[c];

	return k->chunk[i / k->per_chunk] + (size_t)(i % k->per_chunk) * slot_size(c);
}

void ld_rstore_put(struct ld_rstore *s, uint32_t slot)
{
	struct ld_rstore_class *k = &s->cls[slot >> LD_RSTORE_SLOT_BITS];

	k->free[k->nfree++] = slot & ((1u << LD_RSTORE_SLOT_BITS) - 1);
}

void ld_rstore_free(struct ld_rstore *s)
{
	for (uint32_t c = 0; c < LD_RSTORE_CLASSES; c++) {
		struct ld_rstore_class *k = &s->cls[c];

		for (uint32_t i = 0; i < k->nchunk; i++)
			free(k->chunk[i]);
		free(k->chunk);
		free(k->free);
	}
	ld_rstore_init(s);
}

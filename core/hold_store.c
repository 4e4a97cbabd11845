// SPDX-License-Identifier: MIT
/* hold_store.c - a chunk allocator over one caller-provided region (see hold_store.h). */
#include "hold_store.h"

#include <stdlib.h>
#include <string.h>

enum {
	LD_STORE_MAGIC = 0x4c445354,   /* "LDST" */
	LD_STORE_ALIGN = 64,
};

static uint32_t *next_of(const struct ld_store *s)
{
	return (uint32_t *)(uintptr_t)((const uint8_t *)s + sizeof(*s));
}

static uint8_t *chunk_at(const struct ld_store *s, uint32_t c)
{
	return (uint8_t *)(uintptr_t)s + s->data_off + (uint64_t)c * LD_STORE_CHUNK;
}

struct ld_store *ld_store_init(void *base, size_t size)
{
	struct ld_store *s = base;
	uint64_t per = LD_STORE_CHUNK + sizeof(uint32_t);
	uint64_t head = sizeof(*s) + LD_STORE_ALIGN;
	uint64_t n;
	uint32_t *next;

	if (!base || size < LD_STORE_MIN_BYTES || ((uintptr_t)base & 7))
		return NULL;
	n = (size - head) / per;
	if (n >= LD_STORE_NONE)
		n = LD_STORE_NONE - 1;
	memset(s, 0, sizeof(*s));
	s->nchunks = (uint32_t)n;
	s->data_off = (sizeof(*s) + n * sizeof(uint32_t) + LD_STORE_ALIGN - 1) &
		      ~(uint64_t)(LD_STORE_ALIGN - 1);
	next = next_of(s);
	for (uint32_t i = 0; i < s->nchunks; i++)
		next[i] = i + 1 < s->nchunks ? i + 1 : LD_STORE_NONE;
	s->free_head = s->nchunks ? 0 : LD_STORE_NONE;
	s->nfree = s->nchunks;
	s->magic = LD_STORE_MAGIC;
	return s;
}

uint32_t ld_store_put(struct ld_store *s, const uint8_t *data, uint32_t len)
{
	uint32_t need = (len + LD_STORE_CHUNK - 1) / LD_STORE_CHUNK;
	uint32_t *next = next_of(s);
	uint32_t h = s->free_head, c = h, last = h;

	if (len == 0 || len > 65535 || need > s->nfree)
		return LD_STORE_NONE;
	for (uint32_t i = 0; i < need; i++) {
		uint32_t n = len - i * LD_STORE_CHUNK;

		memcpy(chunk_at(s, c), data + (size_t)i * LD_STORE_CHUNK,
		       n < LD_STORE_CHUNK ? n : LD_STORE_CHUNK);
		last = c;
		c = next[c];
	}
	s->free_head = c;
	next[last] = LD_STORE_NONE;
	s->nfree -= need;
	s->stored++;
	return h;
}

void ld_store_get(const struct ld_store *s, uint32_t h, uint32_t len, uint8_t *out)
{
	const uint32_t *next = next_of(s);
	uint32_t off = 0;

	while (off < len && h != LD_STORE_NONE) {
		uint32_t n = len - off < LD_STORE_CHUNK ? len - off : LD_STORE_CHUNK;

		memcpy(out + off, chunk_at(s, h), n);
		off += n;
		h = next[h];
	}
}

void ld_store_free(struct ld_store *s, uint32_t h)
{
	uint32_t *next = next_of(s);
	uint32_t c = h, n = 1;

	if (h == LD_STORE_NONE)
		return;
	while (next[c] != LD_STORE_NONE) {
		c = next[c];
		n++;
	}
	next[c] = s->free_head;
	s->free_head = h;
	s->nfree += n;
	s->stored--;
}

/* Is @h..@len a whole chain of chunks not yet marked in @used? */
static int chain_ok(const struct ld_store *s, const uint8_t *used, uint32_t h, uint32_t len)
{
	const uint32_t *next = next_of(s);
	uint32_t need = (len + LD_STORE_CHUNK - 1) / LD_STORE_CHUNK, c = h;

	if (len == 0 || len > 65535)
		return 0;
	for (uint32_t i = 0; i < need; i++) {
		if (c >= s->nchunks || used[c])
			return 0;
		c = next[c];
	}
	return 1;
}

int ld_store_rebuild(struct ld_store *s, const uint32_t *handles, const uint32_t *lens,
		     uint32_t n, uint8_t *valid)
{
	uint8_t *used = calloc(s->nchunks ? s->nchunks : 1, 1);
	uint32_t *next = next_of(s);

	if (!used)
		return -1;
	s->stored = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t need = (lens[k] + LD_STORE_CHUNK - 1) / LD_STORE_CHUNK, c = handles[k];

		valid[k] = (uint8_t)chain_ok(s, used, c, lens[k]);
		if (!valid[k])
			continue;
		/* a chain repeating one of its own chunks is caught on the way */
		for (uint32_t i = 0; i < need; i++) {
			if (used[c]) {
				valid[k] = 0;
				break;
			}
			used[c] = 1;
			if (i + 1 == need)
				next[c] = LD_STORE_NONE;   /* a free may have relinked it */
			else
				c = next[c];
		}
		s->stored += valid[k];
	}
	s->free_head = LD_STORE_NONE;
	s->nfree = 0;
	for (uint32_t c = s->nchunks; c-- > 0;) {
		if (used[c])
			continue;
		next[c] = s->free_head;
		s->free_head = c;
		s->nfree++;
	}
	free(used);
	return 0;
}

uint64_t ld_store_used_bytes(const struct ld_store *s)
{
	return (uint64_t)(s->nchunks - s->nfree) * LD_STORE_CHUNK;
}

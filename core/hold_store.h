/* SPDX-License-Identifier: MIT */
/*
 * hold_store.h - bytes of held packets the core took over from the kernel,
 * kept in one memory region the caller provides.
 *
 * The region is cut into fixed chunks; a packet is a chain of chunks. Every
 * link is a chunk number, never a pointer, and the store's own state lives
 * at the start of the region: the same region can be mapped MAP_SHARED by
 * another process (a supervisor) at another address and still be read.
 *
 *   base ─► struct ld_store │ next[nchunks] (uint32) │ pad │ chunk 0 │ chunk 1 │ ...
 *
 * A handle is the number of a packet's first chunk. Putting and freeing
 * never allocate; a put that does not fit fails (the caller tail-drops).
 */
#ifndef LD_HOLD_STORE_H
#define LD_HOLD_STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
	LD_STORE_CHUNK = 512,            /* bytes per chunk: a 64 KiB packet takes 128 */
	LD_STORE_NONE = 0xffffffffu,     /* no handle / end of a chain */
	LD_STORE_MIN_BYTES = 4096,       /* smallest region ld_store_init() accepts */
};

struct ld_store {
	uint32_t magic;       /* LD_STORE_MAGIC once initialised */
	uint32_t nchunks;     /* chunks in the region */
	uint32_t free_head;   /* first free chunk, LD_STORE_NONE when full */
	uint32_t nfree;       /* free chunks */
	uint64_t data_off;    /* offset of chunk 0 from the region's start */
	uint64_t stored;      /* packets put and not yet freed */
};

/**
 * ld_store_init() - lay a store over a memory region
 * @base: start of the region (8-byte aligned), at least LD_STORE_MIN_BYTES
 * @size: bytes in the region
 *
 * Return: the store (at @base), or NULL when @size is too small.
 */
struct ld_store *ld_store_init(void *base, size_t size);

/**
 * ld_store_put() - copy a packet in
 * @s: store
 * @data: bytes
 * @len: their number, 1..65535
 *
 * Return: a handle, or LD_STORE_NONE when @len is out of range or the free
 * chunks are too few (nothing changed then).
 */
uint32_t ld_store_put(struct ld_store *s, const uint8_t *data, uint32_t len);

/**
 * ld_store_get() - copy a packet out
 * @s: store
 * @h: handle from ld_store_put()
 * @len: the length given to ld_store_put()
 * @out: at least @len bytes
 */
void ld_store_get(const struct ld_store *s, uint32_t h, uint32_t len, uint8_t *out);

/**
 * ld_store_free() - give a packet's chunks back
 * @s: store
 * @h: handle from ld_store_put(); LD_STORE_NONE is ignored
 */
void ld_store_free(struct ld_store *s, uint32_t h);

/**
 * ld_store_rebuild() - make the free state agree with the packets still in
 * use, ignoring the stored free list and counts (after a process died in
 * the middle of a put or a free; see shared_state.h)
 * @s: store, initialised earlier by ld_store_init()
 * @handles: first chunk of each packet in use
 * @lens: their lengths
 * @n: how many
 * @valid: receives 1 per packet whose chain is whole and shares no chunk
 *         with an earlier one, else 0 (that packet is not kept)
 *
 * Every chunk outside a valid chain becomes free.
 * Return: 0, or -1 when out of memory (nothing changed).
 */
int ld_store_rebuild(struct ld_store *s, const uint32_t *handles, const uint32_t *lens,
		     uint32_t n, uint8_t *valid);

/**
 * ld_store_used_bytes() - memory taken by stored packets (whole chunks)
 * @s: store
 *
 * Return: bytes.
 */
uint64_t ld_store_used_bytes(const struct ld_store *s);

#endif /* LD_HOLD_STORE_H */

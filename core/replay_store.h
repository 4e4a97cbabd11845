/* SPDX-License-Identifier: MIT */
/*
 * replay_store.h - bytes of the frames `luadivert replay` holds back.
 *
 * Live, a held packet stays in the kernel queue. Replay has no kernel
 * queue, so it keeps the frame (link header + IP bytes) itself until the
 * virtual clock reaches its release time. Frames are released in due order,
 * not in arrival order, so a ring does not fit: slots come in power-of-two
 * size classes, carved out of large chunks that are allocated when a class
 * runs out and kept until ld_rstore_free(). Taking and returning a slot
 * never allocates once the store has grown to the largest number of frames
 * held at once.
 */
#ifndef LD_REPLAY_STORE_H
#define LD_REPLAY_STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
	LD_RSTORE_MIN_SHIFT = 7,          /* smallest slot: 128 bytes */
	LD_RSTORE_CLASSES   = 14,         /* ... largest: 128 << 13 = 1 MiB */
	LD_RSTORE_CHUNK     = 1 << 20,    /* bytes per chunk (at least 4 slots) */
	LD_RSTORE_SLOT_BITS = 24,         /* slot id = class << 24 | index */
};

struct ld_rstore_class {
	uint8_t **chunk;      /* chunk[i] holds per_chunk slots */
	uint32_t nchunk;
	uint32_t chunk_cap;   /* room in chunk[] */
	uint32_t per_chunk;
	uint32_t used;        /* slots handed out at least once (high-water mark) */
	uint32_t *free;       /* returned slots, room for every slot of the class */
	uint32_t nfree;
};

struct ld_rstore {
	struct ld_rstore_class cls[LD_RSTORE_CLASSES];
	size_t bytes;         /* memory held in chunks */
};

/**
 * ld_rstore_init() - an empty store (allocates nothing yet)
 * @s: store
 */
void ld_rstore_init(struct ld_rstore *s);

/**
 * ld_rstore_get() - take a slot of at least @size bytes
 * @s: store
 * @size: bytes needed (at most 1 MiB)
 * @slot: receives the slot id, for ld_rstore_ptr() and ld_rstore_put()
 *
 * Return: the slot's memory, or NULL with errno set (ENOMEM, or E2BIG when
 * @size is larger than the largest class).
 */
uint8_t *ld_rstore_get(struct ld_rstore *s, size_t size, uint32_t *slot);

/**
 * ld_rstore_ptr() - memory of a slot taken with ld_rstore_get()
 * @s: store
 * @slot: slot id
 *
 * Return: the slot's memory; it stays valid until the slot is returned.
 */
uint8_t *ld_rstore_ptr(const struct ld_rstore *s, uint32_t slot);

/**
 * ld_rstore_put() - return a slot
 * @s: store
 * @slot: slot id from ld_rstore_get(), not returned yet
 */
void ld_rstore_put(struct ld_rstore *s, uint32_t slot);

/**
 * ld_rstore_free() - release every chunk
 * @s: store; ld_rstore_init() makes it usable again
 */
void ld_rstore_free(struct ld_rstore *s);

#endif /* LD_REPLAY_STORE_H */

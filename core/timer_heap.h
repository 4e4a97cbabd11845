/* SPDX-License-Identifier: MIT */
/*
 * timer_heap.h - held packets ordered by release time.
 *
 * A held packet stays in the kernel queue; the worker keeps only what it
 * needs to verdict it later. Entries with equal release times come out in
 * the order they went in (seq), so a hold never reorders by accident.
 * The array is allocated once, at start-up: pushing never allocates.
 */
#ifndef LD_TIMER_HEAP_H
#define LD_TIMER_HEAP_H

#include <stdint.h>

struct ld_held {
	uint64_t due_ns;      /* release time, same clock as ld_batch.now_ns */
	uint64_t seq;         /* insertion order, breaks ties (set by push) */
	uint32_t id;          /* kernel packet id (replay: record index) */
	uint32_t verdict;     /* verdict to send at release */
	uint32_t set;         /* enum ld_packet_set, LD_SET_HOLD cleared */
	uint32_t new_mark;
	uint32_t new_ct_mark;
	uint32_t slot;        /* copy of modified bytes in the hold store, or LD_HELD_NO_SLOT */
	uint32_t len;         /* length of that copy */
	uint32_t dup;         /* extra copies to inject at release */
	uint32_t flags;       /* enum ld_packet_flag of the packet */
	uint32_t taken;       /* 1: not in the kernel queue; its bytes are a copy (hold_takeover.h) */
	uint32_t copy;        /* that copy's handle in the hold store (hold_store.h) */
	uint32_t outdev;      /* output ifindex, for the MTU and the send */
};

enum { LD_HELD_NO_SLOT = 0xffffffffu };

struct ld_heap {
	struct ld_held *v;
	uint32_t n;
	uint32_t cap;
	uint64_t seq;
};

/**
 * ld_heap_init() - allocate room for @cap held packets
 * @h: heap to initialise
 * @cap: most packets it can hold at once
 *
 * Return: 0, or -1 with errno set when the allocation fails.
 */
int ld_heap_init(struct ld_heap *h, uint32_t cap);

/**
 * ld_heap_init_at() - use @mem (room for @cap entries) instead of allocating:
 * the supervisor puts the heap in memory shared with its workers
 * @h: heap to initialise
 * @mem: the entries' memory; ld_heap_free() must not be called on @h
 * @cap: most packets it can hold at once
 */
void ld_heap_init_at(struct ld_heap *h, struct ld_held *mem, uint32_t cap);

/**
 * ld_heap_free() - release the heap's memory
 * @h: heap
 */
void ld_heap_free(struct ld_heap *h);

/**
 * ld_heap_push() - add a held packet
 * @h: heap
 * @e: entry to copy in (its seq is overwritten)
 *
 * Return: 0, or -1 when the heap is full (the caller decides the overflow
 * verdict; nothing is allocated).
 */
int ld_heap_push(struct ld_heap *h, const struct ld_held *e);

/**
 * ld_heap_peek() - the entry due first
 * @h: heap
 *
 * Return: a pointer into the heap valid until the next push/pop, or NULL.
 */
const struct ld_held *ld_heap_peek(const struct ld_heap *h);

/**
 * ld_heap_pop() - remove the entry due first
 * @h: heap, not empty
 * @out: receives the entry
 */
void ld_heap_pop(struct ld_heap *h, struct ld_held *out);

#endif /* LD_TIMER_HEAP_H */

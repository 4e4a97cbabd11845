/* SPDX-License-Identifier: MIT */
/*
 * loop_guard.h - packets that a policy sends round and round.
 *
 * A REPEAT verdict makes the packet traverse the hook again, and the rule
 * that queued it queues it again; a queue verdict naming our own queue
 * comes straight back. A policy that does that unconditionally loops the
 * packet forever (10 packets made ~950k passes in 3 s). The guard counts
 * the passes of each such packet and, after LD_LOOP_MAX, gives it the
 * default verdict and counts an error.
 *
 * The kernel gives a re-queued packet a new id and no other identity, so a
 * packet is recognised by what a loop leaves alone: hook, addresses, IP id
 * or flow label, protocol, the first 24 transport bytes (ports, TCP sequence)
 * and the length. Only packets that are in a loop are tracked: the table
 * is empty, and costs one comparison per packet, unless a policy repeats.
 */
#ifndef LD_LOOP_GUARD_H
#define LD_LOOP_GUARD_H

#include <stdint.h>

#include "ld_abi.h"
#include "log.h"

enum {
	LD_LOOP_MAX   = 32,    /* passes of one packet before the guard steps in */
	LD_LOOP_SLOTS = 256,   /* packets tracked at once (power of two) */
};

struct ld_loop_entry {
	uint64_t key;          /* 0: free */
	uint32_t passes;
};

struct ld_loop_guard {
	struct ld_loop_entry e[LD_LOOP_SLOTS];
	uint32_t used;
};

/**
 * ld_loop_guard_batch() - count loop passes, break loops that went on too long
 * @g: the guard (zeroed at start)
 * @pkts: the batch after the policy ran
 * @n: packets in it
 * @queue: our own queue number (a queue verdict to it is a loop)
 * @default_verdict: what a looping packet gets instead
 * @lim: rate limit of the message
 *
 * Return: the number of packets whose verdict was replaced (errors).
 */
uint32_t ld_loop_guard_batch(struct ld_loop_guard *g, struct ld_packet *pkts, uint32_t n,
			     uint16_t queue, uint32_t default_verdict, struct ld_log_limit *lim);

#endif /* LD_LOOP_GUARD_H */

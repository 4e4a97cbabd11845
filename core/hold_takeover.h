/* SPDX-License-Identifier: MIT */
/*
 * hold_takeover.h - held packets of local origin leave the kernel queue.
 * (Their copies live in the hold store of the supervisor's shared region,
 * core/shared_state.h, so that they outlive a worker.)
 *
 * A packet this host sent is charged to its socket (TCP Small Queues,
 * sk_wmem_alloc, SO_SNDBUF) until it is freed. Held in the kernel queue, it
 * stays charged for the whole delay, and TCP keeps about two packets in
 * flight per delay period (50 ms cut an upload from 563 to 0.5 Mbit/s).
 * netem frees the packet from its socket when it queues it; so do we:
 *
 *   batch:   policy holds p ──► local origin? ──no──► zero-copy hold (kernel queue)
 *                                    │yes
 *                                    ▼
 *            copy p into the hold store, verdict NF_DROP for the original now
 *            (the stack counted it as sent when it was queued: the sender
 *            sees nothing, its socket memory is freed)
 *   release: copy ──► GSO? segment to the output device's MTU ──► raw socket
 *            with the skip mark (inject.h) ──► routing, POSTROUTING/NAT,
 *            qdisc, exactly once, as the original would have gone
 *
 * "Local origin" means: hook LOCAL_OUT, or POST_ROUTING without an input
 * device (a forwarded packet has one). Packets are kept in the kernel
 * instead (still correct, just charged to their socket) when they cannot be
 * rebuilt exactly: a verdict other than accept (repeat, queue-to-N), a new
 * mark or conntrack mark asked for (the raw socket carries the skip mark),
 * bytes the kernel cut short, packets larger than the MTU that are not
 * TCP (UDP GSO, IPv4 fragmentation), and IPv6 with extension headers when
 * larger than the MTU. A held packet whose verdict is drop is dropped at
 * once: no copy needed.
 */
#ifndef LD_HOLD_TAKEOVER_H
#define LD_HOLD_TAKEOVER_H

#include <stddef.h>
#include <stdint.h>

#include "hold_store.h"
#include "inject.h"
#include "ld_abi.h"

enum {
	LD_HOLD_BYTES_DEFAULT = 64 << 20,   /* --hold-bytes: memory for copies */
	LD_TAKEOVER_MTU_SLOTS = 8,          /* output devices whose MTU is cached */
	LD_TAKEOVER_MTU_TTL_NS = 1000000000, /* re-read a cached MTU after 1 s */
	LD_TAKEOVER_SEG_AREA = 2 * 65536,   /* segments built before one batched send */
};

enum ld_take {
	LD_TAKE_FULL = -1,   /* would be taken, but the store is full: tail-drop it */
	LD_TAKE_KEEP = 0,    /* keep it in the kernel queue (zero-copy hold) */
	LD_TAKE_COPY = 1,    /* copied: drop the original now, send the copy later */
	LD_TAKE_DROP = 2,    /* held only to be dropped: drop the original now */
};

struct ld_mtu_slot {
	uint32_t ifindex;
	uint32_t mtu;
	uint64_t read_ns;
};

struct ld_takeover {
	struct ld_store *store;   /* in the supervisor's shared region; NULL when disabled */
	int       ioctl_fd;       /* for SIOCGIFNAME / SIOCGIFMTU */
	struct ld_mtu_slot mtu[LD_TAKEOVER_MTU_SLOTS];
	uint32_t  mtu_next;       /* slot replaced next */
	uint8_t  *buf;            /* LD_PACKET_MAX: a copy taken out of the store */
	uint8_t  *seg;            /* LD_TAKEOVER_SEG_AREA: segments being built */
	const uint8_t *bp[LD_INJECT_BATCH]; /* released copies queued in the segment area */
	uint32_t  bl[LD_INJECT_BATCH];
	uint32_t  btag[LD_INJECT_BATCH]; /* their release's tag (ld_inject_send_tagged()) */
	uint32_t  bn;             /* how many */
	uint32_t  bused;          /* bytes of the segment area they take */
	uint32_t  bdev;           /* their output device */
	uint64_t  segmented;      /* packets cut into segments */
	uint64_t  segments;       /* segments sent */
};

/**
 * ld_takeover_init() - open what sending copies needs, over a hold store
 * @t: state to initialise
 * @store: the hold store, laid out by its owner (ld_store_init(); under
 *         the supervisor it lives in the shared region, shared_state.h,
 *         so that the copies outlive a worker); NULL disables taking over
 *         (every hold stays in the kernel, as before)
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 with @err set.
 */
int ld_takeover_init(struct ld_takeover *t, struct ld_store *store, char *err, size_t errlen);

/**
 * ld_takeover_free() - close (the store is its owner's)
 * @t: state, initialised or zeroed
 */
void ld_takeover_free(struct ld_takeover *t);

/**
 * ld_takeover_take() - decide the fate of a packet the policy holds
 * @t: state
 * @p: the packet (its verdict, set and bytes as the policy left them)
 * @now_ns: clock, for the MTU cache
 * @copy: receives the store handle for LD_TAKE_COPY
 *
 * Return: enum ld_take.
 */
int ld_takeover_take(struct ld_takeover *t, const struct ld_packet *p, uint64_t now_ns,
		     uint32_t *copy);

/**
 * ld_takeover_send() - send a packet through the raw sockets, segmented to
 * the output device's MTU when it is larger
 * @t: state
 * @inj: open injector
 * @data: packet bytes (written: a pending checksum is completed in place)
 * @len: bytes at @data
 * @outdev: output ifindex, 0 when unknown (then sent whole)
 * @flags: enum ld_packet_flag of the packet
 * @times: how many times to send it
 * @now_ns: clock, for the MTU cache
 * @failed: receives the number of packets (segments) the kernel refused
 *
 * Return: packets (segments) sent.
 */
uint32_t ld_takeover_send(struct ld_takeover *t, struct ld_inject *inj, uint8_t *data,
			  uint32_t len, uint32_t outdev, uint32_t flags, uint32_t times,
			  uint64_t now_ns, uint32_t *failed);

/**
 * ld_takeover_release() - send a stored copy @times times and free it
 * @t: state
 * @inj: open injector
 * @copy: handle from ld_takeover_take()
 * @len: the packet's length
 * @outdev: output ifindex
 * @flags: enum ld_packet_flag
 * @times: 0 only frees it (a drop)
 * @now_ns: clock
 * @tag: logged with every packet (segment) of this copy by
 *       ld_inject_send_tagged() in inj->log; LD_INJECT_NO_TAG when the
 *       caller keeps no log
 * @failed: as ld_takeover_send(), for what was sent by this call
 *
 * Copies that need no segmenting are queued (up to LD_INJECT_BATCH, in
 * release order) and sent together by the next ld_takeover_flush(), or by
 * a later call when the batch is full: one sendmmsg for all the packets
 * due at one timer wake-up. A GSO copy flushes the queue and goes out at once.
 * Return: packets (segments) sent by this call.
 */
uint32_t ld_takeover_release(struct ld_takeover *t, struct ld_inject *inj, uint32_t copy,
			     uint32_t len, uint32_t outdev, uint32_t flags, uint32_t times,
			     uint64_t now_ns, uint32_t tag, uint32_t *failed);

/**
 * ld_takeover_flush() - send the copies ld_takeover_release() queued
 * @t: state
 * @inj: open injector
 * @failed: receives the number the kernel refused
 *
 * Return: packets sent.
 */
uint32_t ld_takeover_flush(struct ld_takeover *t, struct ld_inject *inj, uint32_t *failed);

#endif /* LD_HOLD_TAKEOVER_H */

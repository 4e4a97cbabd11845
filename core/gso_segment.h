/* SPDX-License-Identifier: MIT */
/*
 * gso_segment.h - cut a GSO/TSO TCP packet into MTU-sized segments in
 * software, as the kernel's own GSO would before the NIC.
 *
 * The core needs this for packets it took over from the kernel (held
 * packets of local origin, see hold_takeover.h): NFQUEUE hands them over
 * whole (NFQA_CFG_F_GSO), up to 64 KiB, and a raw socket refuses anything
 * larger than the route's MTU.
 *
 *   [IP|TCP|payload .............................]        one GSO packet
 *   [IP|TCP|mss bytes][IP|TCP|mss bytes]...[IP|TCP|rest]  nseg segments
 *
 * Per segment: sequence number += bytes before it; IPv4 id += index and a
 * new header checksum; IPv4 total length / IPv6 payload length; FIN and PSH
 * only on the last segment, CWR only on the first; the TCP checksum
 * computed from scratch (so a CHECKSUM_PARTIAL original is fine). Options
 * (timestamps, SACK) are copied to every segment, as the kernel does.
 *
 * Not handled (ld_gso_plan() says no, the caller keeps the packet in the
 * kernel): UDP GSO (the segment size is not known to us), IPv6 extension
 * headers (BIG TCP's hop-by-hop jumbo option included), IPv4 fragments,
 * truncated packets.
 */
#ifndef LD_GSO_SEGMENT_H
#define LD_GSO_SEGMENT_H

#include <stdint.h>

struct ld_gso_plan {
	uint32_t l3len;      /* IP header bytes */
	uint32_t hdr_len;    /* IP + TCP header bytes, copied to every segment */
	uint32_t payload;    /* TCP payload bytes in the whole packet */
	uint32_t mss;        /* payload bytes per segment (the last may have fewer) */
	uint32_t nseg;       /* segments, >= 1 */
	uint8_t  v6;         /* 1 for IPv6 */
};

/**
 * ld_gso_plan() - decide how a TCP packet is cut for an MTU
 * @pkt: packet, starting at the IPv4 or IPv6 header
 * @len: bytes at @pkt
 * @mtu: largest IP packet the output device sends
 * @plan: filled in on success
 *
 * Return: 0 when @pkt is TCP over IPv4 or IPv6 (no extension headers) with
 * consistent lengths and headers that leave room for payload in @mtu (nseg
 * is 1 when it already fits); -1 otherwise.
 */
int ld_gso_plan(const uint8_t *pkt, uint32_t len, uint32_t mtu, struct ld_gso_plan *plan);

/**
 * ld_gso_build() - write segment @i of a planned packet
 * @plan: from ld_gso_plan() on @pkt
 * @pkt: the whole packet
 * @i: segment index, < plan->nseg
 * @out: room for plan->hdr_len + plan->mss bytes
 *
 * Return: the segment's length.
 */
uint32_t ld_gso_build(const struct ld_gso_plan *plan, const uint8_t *pkt, uint32_t i,
		      uint8_t *out);

#endif /* LD_GSO_SEGMENT_H */

/* SPDX-License-Identifier: MIT */
/* csum.h - Internet checksums in C, for packets the core itself sends. */
#ifndef LD_CSUM_H
#define LD_CSUM_H

#include <stdint.h>

/**
 * ld_csum_fill_l4() - compute the TCP, UDP or ICMP(v6) checksum of an IP
 * packet from scratch and store it
 * @pkt: packet, starting at the IPv4 or IPv6 header
 * @len: bytes at @pkt
 *
 * For packets the kernel queued with CHECKSUM_PARTIAL (LD_PKT_CSUM_NOTREADY):
 * their checksum field holds only the pseudo-header sum, which is fine for
 * the original (the stack finishes it) but not for a copy we send through a
 * raw socket. IPv6 extension headers are not walked: such packets are left
 * alone. Fragments are left alone.
 * Return: 0 when a checksum was written, -1 when the packet was left as it is.
 */
int ld_csum_fill_l4(uint8_t *pkt, uint32_t len);

#endif /* LD_CSUM_H */

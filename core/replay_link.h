/* SPDX-License-Identifier: MIT */
/*
 * replay_link.h - link-layer decapsulation for `luadivert replay`.
 *
 * A capture record starts with a link-layer header (Ethernet, Linux cooked,
 * BSD loopback, PPP, or nothing for raw IP). Replay hands the policy the IP
 * packet that follows it, exactly as NFQUEUE would, and writes the header
 * back in front of the packet when the policy changed it. None of the
 * supported headers carries a length field, so a length change needs no
 * fix-up in the link header.
 */
#ifndef LD_REPLAY_LINK_H
#define LD_REPLAY_LINK_H

#include <stdint.h>

enum {
	LD_LINK_HDR_MAX   = 512, /* longest link header accepted (NFLOG TLVs, Ethernet + tags) */
	LD_LINK_VLAN_MAX  = 8,   /* stacked 802.1Q / 802.1ad tags we look through */
	LD_ETH_P_IP       = 0x0800,
	LD_ETH_P_IPV6     = 0x86dd,
	LD_DLT_NFLOG      = 239,   /* DLT_NFLOG: netfilter's log */
	LD_DLT_C_HDLC     = 104,   /* DLT_C_HDLC: Cisco HDLC */
};

/* Where the IP packet starts in a frame and what it is. */
struct ld_link_l3 {
	uint32_t hdr_len;   /* link-layer bytes before the IP header */
	uint16_t hw_proto;  /* LD_ETH_P_IP or LD_ETH_P_IPV6, host order */
};

/**
 * ld_link_supported() - whether replay can decapsulate a link type
 * @dlt: DLT_* value as returned by pcap_datalink()
 *
 * Return: 1 for Ethernet, raw IP (DLT_RAW, DLT_IPV4, DLT_IPV6), Linux cooked
 * SLL and SLL2, BSD loopback (DLT_NULL, DLT_LOOP), PPP, NFLOG and Cisco
 * HDLC; 0 otherwise.
 */
int ld_link_supported(int dlt);

/**
 * ld_link_decap() - find the IP packet in a captured frame
 * @dlt: the capture's link type (supported, see ld_link_supported())
 * @frame: the captured bytes
 * @caplen: how many bytes were captured
 * @l3: receives the link header length and the IP version's ethertype
 *
 * VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, and the old 0x9100) are looked
 * through, up to LD_LINK_VLAN_MAX of them, on Ethernet and Linux cooked
 * frames. A frame too short for its header, or with no IP byte after it,
 * is "not IP".
 *
 * Return: 1 when the frame carries IPv4 or IPv6 (@l3 filled in), 0 when it
 * is something else (ARP, LLC, a truncated header, ...).
 */
int ld_link_decap(int dlt, const uint8_t *frame, uint32_t caplen, struct ld_link_l3 *l3);

/**
 * ld_link_set_ip_len() - a link header that states the packet's length
 * (NFLOG's payload TLV) made to say @ip_len; other link types: nothing
 * @dlt: the capture's link type
 * @hdr: the link header, copied in front of the changed packet
 * @hdr_len: its length
 * @ip_len: the changed packet's length
 *
 * Return: how many zero bytes the link type wants after the packet (NFLOG
 * pads its TLVs to 4 bytes), 0 for the others.
 */
uint32_t ld_link_set_ip_len(int dlt, uint8_t *hdr, uint32_t hdr_len, uint32_t ip_len);

/* replay_link_nflog.c: NFLOG and Cisco HDLC frames (ld_link_decap() calls them) */
int ld_link_nflog_decap(const uint8_t *frame, uint32_t caplen, struct ld_link_l3 *l3);
int ld_link_chdlc_decap(const uint8_t *frame, uint32_t caplen, struct ld_link_l3 *l3);

/**
 * ld_link_ip_len() - the length an IP header says its packet has
 * @hw_proto: LD_ETH_P_IP or LD_ETH_P_IPV6
 * @ip: the captured IP bytes
 * @caplen: how many of them there are
 *
 * Used to strip link-layer padding (an Ethernet frame is at least 60
 * bytes): the kernel hands NFQUEUE the packet without it. A header whose
 * version does not match @hw_proto, a length field of 0 (TSO / BIG TCP,
 * IPv6 jumbograms) or a length shorter than the header itself gives 0:
 * "unknown, keep what was captured".
 *
 * Return: the IP packet's total length, or 0 when it cannot be trusted.
 */
uint32_t ld_link_ip_len(uint16_t hw_proto, const uint8_t *ip, uint32_t caplen);

#endif /* LD_REPLAY_LINK_H */

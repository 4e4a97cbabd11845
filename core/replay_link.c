// SPDX-License-Identifier: MIT
/*
 * replay_link.c - find the IP packet behind a capture's link-layer header.
 *
 * Header layouts handled here (all multi-byte fields big-endian unless said):
 *
 *   Ethernet    dst(6) src(6) type(2) [tag: tpid(2) tci(2) ... then type(2)]
 *   Linux SLL   pkttype(2) hatype(2) addrlen(2) addr(8) protocol(2)       = 16
 *   Linux SLL2  protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1)
 *               addrlen(1) addr(8)                                        = 20
 *   BSD NULL    family(4, the capturing host's byte order)               = 4
 *   BSD LOOP    family(4, network order)                                  = 4
 *   PPP         [0xff 0x03] protocol(1 or 2: odd first byte = 1 byte)
 *   raw IP      nothing: the version nibble says v4 or v6
 */
#include "replay_link.h"

#include <pcap/pcap.h>

enum {
	ETH_HDR      = 14,
	VLAN_TAG     = 4,
	SLL_HDR      = 16,
	SLL_PROTO    = 14,
	SLL_HATYPE   = 2,
	SLL2_HDR     = 20,
	SLL2_HATYPE  = 8,
	NULL_HDR     = 4,
	ARPHRD_NETLINK = 824,  /* cooked netlink capture: protocol is a netlink family */
	TPID_8021Q   = 0x8100,
	TPID_8021AD  = 0x88a8,
	TPID_QINQ_OLD = 0x9100,
	PPP_ADDR     = 0xff,
	PPP_CTRL     = 0x03,
	PPP_IP       = 0x0021,
	PPP_IPV6     = 0x0057,
	/* address families that mean IP in a BSD loopback header */
	BSD_AF_INET        = 2,
	BSD_AF_INET6_BSD   = 24,  /* NetBSD, OpenBSD, BSD/OS */
	BSD_AF_INET6_FREEBSD = 28,
	BSD_AF_INET6_DARWIN  = 30,
	IPV4_HDR_MIN = 20,
	IPV6_HDR     = 40,
};

#ifndef DLT_PPP_SERIAL
#define DLT_PPP_SERIAL 50
#endif

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int ld_link_supported(int dlt)
{
	switch (dlt) {
	case DLT_EN10MB:
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
	case DLT_LINUX_SLL:
	case DLT_LINUX_SLL2:
	case DLT_NULL:
	case DLT_LOOP:
	case DLT_PPP:
	case DLT_PPP_SERIAL:
	case LD_DLT_NFLOG:
	case LD_DLT_C_HDLC:
		return 1;
	default:
		return 0;
	}
}

/*
 * The ethertype at @type_off says what follows the header, which ends at
 * @off; VLAN tags sit at @off (tpid already read as the type, then tci(2)
 * and the next type(2)).
 */
static int l3_from_ethertype(const uint8_t *f, uint32_t caplen, uint32_t type_off,
			     uint32_t off, struct ld_link_l3 *l3)
{
	uint16_t type;
	int tags = 0;

	if (caplen < off || caplen < type_off + 2)
		return 0;
	type = be16(f + type_off);
	while (type == TPID_8021Q || type == TPID_8021AD || type == TPID_QINQ_OLD) {
		if (++tags > LD_LINK_VLAN_MAX || caplen < off + VLAN_TAG)
			return 0;
		type = be16(f + off + 2);  /* skip the TCI */
		off += VLAN_TAG;
	}
	if (type != LD_ETH_P_IP && type != LD_ETH_P_IPV6)
		return 0;
	l3->hdr_len = off;
	l3->hw_proto = type;
	return 1;
}

static int l3_from_version(const uint8_t *f, uint32_t caplen, uint32_t off,
			   struct ld_link_l3 *l3)
{
	if (caplen <= off)
		return 0;
	switch (f[off] >> 4) {
	case 4:
		l3->hw_proto = LD_ETH_P_IP;
		break;
	case 6:
		l3->hw_proto = LD_ETH_P_IPV6;
		break;
	default:
		return 0;
	}
	l3->hdr_len = off;
	return 1;
}

static int l3_from_bsd_family(const uint8_t *f, uint32_t caplen, int network_order,
			      struct ld_link_l3 *l3)
{
	uint32_t fam;

	if (caplen < NULL_HDR)
		return 0;
	fam = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
	/* DLT_NULL is in the byte order of the host that captured: a small
	 * family number in the high byte means it was little-endian. */
	if (!network_order && fam > 0xffff)
		fam = __builtin_bswap32(fam);
	l3->hdr_len = NULL_HDR;
	switch (fam) {
	case BSD_AF_INET:
		l3->hw_proto = LD_ETH_P_IP;
		return 1;
	case BSD_AF_INET6_BSD:
	case BSD_AF_INET6_FREEBSD:
	case BSD_AF_INET6_DARWIN:
		l3->hw_proto = LD_ETH_P_IPV6;
		return 1;
	default:
		return 0;
	}
}

static int l3_from_ppp(const uint8_t *f, uint32_t caplen, struct ld_link_l3 *l3)
{
	uint32_t off = 0;
	uint16_t proto;

	if (caplen >= 2 && f[0] == PPP_ADDR && f[1] == PPP_CTRL)
		off = 2;
	if (caplen <= off)
		return 0;
	if (f[off] & 1) {         /* protocol field compressed to one byte */
		proto = f[off];
		off += 1;
	} else {
		if (caplen < off + 2)
			return 0;
		proto = be16(f + off);
		off += 2;
	}
	if (proto == PPP_IP)
		l3->hw_proto = LD_ETH_P_IP;
	else if (proto == PPP_IPV6)
		l3->hw_proto = LD_ETH_P_IPV6;
	else
		return 0;
	l3->hdr_len = off;
	return 1;
}

int ld_link_decap(int dlt, const uint8_t *f, uint32_t caplen, struct ld_link_l3 *l3)
{
	int ip;

	switch (dlt) {
	case DLT_EN10MB:
		ip = l3_from_ethertype(f, caplen, ETH_HDR - 2, ETH_HDR, l3);
		break;
	case DLT_LINUX_SLL:
		ip = caplen >= SLL_HDR && be16(f + SLL_HATYPE) != ARPHRD_NETLINK &&
		     l3_from_ethertype(f, caplen, SLL_PROTO, SLL_HDR, l3);
		break;
	case DLT_LINUX_SLL2:
		ip = caplen >= SLL2_HDR && be16(f + SLL2_HATYPE) != ARPHRD_NETLINK &&
		     l3_from_ethertype(f, caplen, 0, SLL2_HDR, l3);
		break;
	case DLT_RAW:
		ip = l3_from_version(f, caplen, 0, l3);
		break;
	case DLT_IPV4:
		l3->hdr_len = 0;
		l3->hw_proto = LD_ETH_P_IP;
		ip = caplen > 0;
		break;
	case DLT_IPV6:
		l3->hdr_len = 0;
		l3->hw_proto = LD_ETH_P_IPV6;
		ip = caplen > 0;
		break;
	case DLT_NULL:
		ip = l3_from_bsd_family(f, caplen, 0, l3);
		break;
	case DLT_LOOP:
		ip = l3_from_bsd_family(f, caplen, 1, l3);
		break;
	case DLT_PPP:
	case DLT_PPP_SERIAL:
		ip = l3_from_ppp(f, caplen, l3);
		break;
	case LD_DLT_NFLOG:
		ip = ld_link_nflog_decap(f, caplen, l3);
		break;
	case LD_DLT_C_HDLC:
		ip = ld_link_chdlc_decap(f, caplen, l3);
		break;
	default:
		ip = 0;
		break;
	}
	/* an IP packet has at least one byte, and its header must fit our headroom */
	return ip && l3->hdr_len < caplen && l3->hdr_len <= LD_LINK_HDR_MAX;
}

uint32_t ld_link_ip_len(uint16_t hw_proto, const uint8_t *ip, uint32_t caplen)
{
	uint32_t len;

	if (hw_proto == LD_ETH_P_IP) {
		if (caplen < IPV4_HDR_MIN || ip[0] >> 4 != 4)
			return 0;
		len = be16(ip + 2);
		return len >= (uint32_t)(ip[0] & 0x0f) * 4 && len >= IPV4_HDR_MIN ? len : 0;
	}
	if (caplen < IPV6_HDR || ip[0] >> 4 != 6)
		return 0;
	len = be16(ip + 4);
	return len ? len + IPV6_HDR : 0;
}

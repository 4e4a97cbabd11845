// SPDX-License-Identifier: MIT
/* gso_segment.c - software TCP segmentation for IPv4 and IPv6 (see gso_segment.h). */
#include "gso_segment.h"

#include <string.h>

#include "csum.h"

enum {
	GSO_IPV4_MIN = 20,
	GSO_IPV6_HDR = 40,
	GSO_TCP_MIN = 20,
	GSO_PROTO_TCP = 6,
	GSO_TCP_SEQ = 4,        /* offsets in the TCP header */
	GSO_TCP_FLAGS = 13,
	GSO_FIN = 0x01,
	GSO_PSH = 0x08,
	GSO_CWR = 0x80,
};

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static void ipv4_header_csum(uint8_t *ip, uint32_t ihl)
{
	uint32_t acc = 0;

	ip[10] = ip[11] = 0;
	for (uint32_t i = 0; i < ihl; i += 2)
		acc += be16(ip + i);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	put16(ip + 10, ~acc & 0xffff);
}

int ld_gso_plan(const uint8_t *pkt, uint32_t len, uint32_t mtu, struct ld_gso_plan *pl)
{
	uint32_t l3, total, thl;

	memset(pl, 0, sizeof(*pl));
	if (len < GSO_IPV4_MIN)
		return -1;
	if (pkt[0] >> 4 == 4) {
		l3 = (uint32_t)(pkt[0] & 0x0f) * 4;
		total = be16(pkt + 2);
		/* a fragment (MF or an offset) is not a whole TCP packet */
		if (l3 < GSO_IPV4_MIN || pkt[9] != GSO_PROTO_TCP || ((pkt[6] & 0x3f) | pkt[7]))
			return -1;
	} else if (pkt[0] >> 4 == 6 && len >= GSO_IPV6_HDR) {
		l3 = GSO_IPV6_HDR;
		total = GSO_IPV6_HDR + be16(pkt + 4);
		if (pkt[6] != GSO_PROTO_TCP || total == GSO_IPV6_HDR)
			return -1;
		pl->v6 = 1;
	} else {
		return -1;
	}
	if (total > len || total < l3 + GSO_TCP_MIN)
		return -1;
	thl = (uint32_t)(pkt[l3 + 12] >> 4) * 4;
	if (thl < GSO_TCP_MIN || l3 + thl > total || l3 + thl >= mtu)
		return -1;
	pl->l3len = l3;
	pl->hdr_len = l3 + thl;
	pl->payload = total - pl->hdr_len;
	pl->mss = mtu - pl->hdr_len;
	pl->nseg = pl->payload ? (pl->payload + pl->mss - 1) / pl->mss : 1;
	return 0;
}

uint32_t ld_gso_build(const struct ld_gso_plan *pl, const uint8_t *pkt, uint32_t i,
		      uint8_t *out)
{
	uint32_t off = i * pl->mss;
	uint32_t n = pl->payload - off < pl->mss ? pl->payload - off : pl->mss;
	uint32_t seglen = pl->hdr_len + n;
	uint8_t *tcp = out + pl->l3len;
	uint8_t flags;

	memcpy(out, pkt, pl->hdr_len);
	memcpy(out + pl->hdr_len, pkt + pl->hdr_len + off, n);
	if (pl->nseg > 1) {
		put32(tcp + GSO_TCP_SEQ, be32(tcp + GSO_TCP_SEQ) + off);
		flags = tcp[GSO_TCP_FLAGS];
		if (i + 1 < pl->nseg)
			flags &= (uint8_t)~(GSO_FIN | GSO_PSH);
		if (i > 0)
			flags &= (uint8_t)~GSO_CWR;
		tcp[GSO_TCP_FLAGS] = flags;
	}
	if (pl->v6) {
		put16(out + 4, seglen - GSO_IPV6_HDR);
	} else {
		put16(out + 2, seglen);
		put16(out + 4, (be16(pkt + 4) + i) & 0xffff);
		ipv4_header_csum(out, pl->l3len);
	}
	ld_csum_fill_l4(out, seglen);
	return seglen;
}

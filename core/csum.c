// SPDX-License-Identifier: MIT
/* csum.c - one's-complement sums (RFC 1071) over IP pseudo-headers. */
#include "csum.h"

#include <stddef.h>

enum {
	IPPROTO_ICMP_ = 1, IPPROTO_TCP_ = 6, IPPROTO_UDP_ = 17, IPPROTO_ICMPV6_ = 58,
	IPV6_HDR_LEN = 40,
};

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* Offset of the checksum field in the L4 header, or -1. */
static int csum_offset(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP_: return 16;
	case IPPROTO_UDP_: return 6;
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_: return 2;
	default: return -1;
	}
}

int ld_csum_fill_l4(uint8_t *pkt, uint32_t len)
{
	uint32_t acc = 0, l3len, l4len;
	uint8_t proto, *l4;
	uint16_t sum;
	int off;

	if (len < 20)
		return -1;
	if (pkt[0] >> 4 == 4) {
		uint32_t ihl = (uint32_t)(pkt[0] & 0xf) * 4, tot = (uint32_t)pkt[2] << 8 | pkt[3];

		/* fragments (MF or an offset) carry only part of the L4 data */
		if (ihl < 20 || tot > len || tot < ihl || ((pkt[6] & 0x3f) | pkt[7]))
			return -1;
		proto = pkt[9];
		l3len = ihl;
		l4len = tot - ihl;
		if (proto != IPPROTO_ICMP_)
			acc = sum16(pkt + 12, 8, proto + l4len);
	} else if (pkt[0] >> 4 == 6 && len >= IPV6_HDR_LEN) {
		l4len = (uint32_t)pkt[4] << 8 | pkt[5];
		proto = pkt[6];
		l3len = IPV6_HDR_LEN;
		if (l4len > len - IPV6_HDR_LEN || proto == IPPROTO_ICMP_)
			return -1;
		acc = sum16(pkt + 8, 32, proto + l4len);
	} else {
		return -1;
	}
	off = csum_offset(proto);
	if (off < 0 || l4len < (uint32_t)off + 2)
		return -1;
	l4 = pkt + l3len;
	l4[off] = l4[off + 1] = 0;
	sum = fold(sum16(l4, l4len, acc));
	if (proto == IPPROTO_UDP_ && sum == 0)
		sum = 0xffff;  /* 0 means "no checksum" for UDP */
	l4[off] = (uint8_t)(sum >> 8);
	l4[off + 1] = (uint8_t)sum;
	return 0;
}

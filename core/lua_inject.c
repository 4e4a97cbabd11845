// SPDX-License-Identifier: MIT
/* lua_inject.c - divert.inject(): check a policy's packet, hand it to the sink. */
#include "lua_inject.h"

#include <errno.h>
#include <stddef.h>

#include "ld_abi.h"

enum { IP4_HDR_MIN = 20, IP6_HDR_LEN = 40 };

/* The packet's own length, or 0 when it is not a whole IPv4/IPv6 packet. */
static uint32_t ip_len(const uint8_t *p, uint32_t len)
{
	uint32_t total;

	if (len < IP4_HDR_MIN)
		return 0;
	if (p[0] >> 4 == 4) {
		uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;

		total = (uint32_t)p[2] << 8 | p[3];
		return ihl < IP4_HDR_MIN || total < ihl || total > len ? 0 : total;
	}
	if (p[0] >> 4 == 6 && len >= IP6_HDR_LEN) {
		total = IP6_HDR_LEN + ((uint32_t)p[4] << 8 | p[5]);
		return total > len ? 0 : total;
	}
	return 0;
}

int ld_lua_inject(struct ld_inject_sink *sink, const uint8_t *pkt, uint32_t len, int inbound,
		  uint32_t ifindex)
{
	uint32_t total;

	if (!sink || !sink->send)
		return -ENOTCONN;
	if (!pkt || len > LD_PACKET_MAX || !(total = ip_len(pkt, len)))
		return -EINVAL;
	return sink->send(sink->ctx, pkt, total, !!inbound, ifindex);
}

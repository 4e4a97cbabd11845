// SPDX-License-Identifier: MIT
/*
 * replay_link_nflog.c - link types whose header says how long the packet
 * is: NFLOG (netfilter's own, LINKTYPE_NFLOG 239), and Cisco HDLC (104),
 * which is simple enough to live here too.
 *
 *   NFLOG   family(1) version(1) resource id(2, big-endian), then TLVs:
 *           length(2) type(2) value, padded to 4 bytes; length and type in
 *           the byte order of the host that captured, which libpcap turns
 *           into ours when it reads a file. The packet is the value of the
 *           NFULA_PAYLOAD (9) TLV, normally the last one.
 *   C_HDLC  address(1) control(1) protocol(2, an ethertype)               = 4
 */
#include "replay_link.h"

#include <string.h>

enum {
	NFLOG_HDR = 4,
	NFLOG_TLV = 4,
	NFULA_PAYLOAD = 9,
	NFLOG_AF_INET = 2,
	NFLOG_AF_INET6 = 10,
	CHDLC_HDR = 4,
};

static uint16_t host16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Offset of the NFULA_PAYLOAD TLV in an NFLOG frame, or 0 when there is none. */
static uint32_t nflog_payload_tlv(const uint8_t *f, uint32_t caplen)
{
	uint32_t off = NFLOG_HDR;

	while (off + NFLOG_TLV <= caplen) {
		uint16_t len = host16(f + off), type = host16(f + off + 2);

		if (len < NFLOG_TLV)
			return 0;
		if (type == NFULA_PAYLOAD)
			return off;
		off += (len + 3u) & ~3u;
	}
	return 0;
}

int ld_link_nflog_decap(const uint8_t *f, uint32_t caplen, struct ld_link_l3 *l3)
{
	uint32_t tlv;

	if (caplen < NFLOG_HDR || f[1] != 0)   /* version 0 is the only one */
		return 0;
	if (f[0] == NFLOG_AF_INET)
		l3->hw_proto = LD_ETH_P_IP;
	else if (f[0] == NFLOG_AF_INET6)
		l3->hw_proto = LD_ETH_P_IPV6;
	else
		return 0;
	tlv = nflog_payload_tlv(f, caplen);
	if (!tlv)
		return 0;
	l3->hdr_len = tlv + NFLOG_TLV;
	return 1;
}

int ld_link_chdlc_decap(const uint8_t *f, uint32_t caplen, struct ld_link_l3 *l3)
{
	uint16_t proto;

	if (caplen < CHDLC_HDR)
		return 0;
	proto = (uint16_t)(f[2] << 8 | f[3]);
	if (proto != LD_ETH_P_IP && proto != LD_ETH_P_IPV6)
		return 0;
	l3->hw_proto = proto;
	l3->hdr_len = CHDLC_HDR;
	return 1;
}

uint32_t ld_link_set_ip_len(int dlt, uint8_t *hdr, uint32_t hdr_len, uint32_t ip_len)
{
	uint32_t len;
	uint16_t v;

	if (dlt != LD_DLT_NFLOG || hdr_len < NFLOG_HDR + NFLOG_TLV)
		return 0;
	/* the payload TLV's header is the last thing before the packet */
	len = NFLOG_TLV + ip_len;
	v = len > 0xffff ? 0xffff : (uint16_t)len;
	memcpy(hdr + hdr_len - NFLOG_TLV, &v, sizeof(v));
	/* TLVs are padded to 4 bytes; readers expect the padding captured */
	return (4 - ip_len % 4) % 4;
}

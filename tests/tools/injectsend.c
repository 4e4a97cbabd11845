/* SPDX-License-Identifier: MIT */
/*
 * injectsend - send sequenced UDP datagrams through core/inject.c, the way
 * luadivert injects duplicates: whole IP packets on raw sockets with a mark.
 *
 *   injectsend --src ADDR --dst ADDR --port P [--count N] [--size BYTES]
 *              [--mark M] [--dev IFNAME] [--rate PPS]
 *
 * Builds IPv4 or IPv6 (from the address family of --dst) UDP packets from
 * --src:40000 to --dst:P whose payload is the tool_common.h header
 * (sequence, send time) plus filler up to --size, with a valid checksum,
 * and hands each to ld_inject_send_dev() (--mark default
 * LD_INJECT_MARK_DEFAULT; --dev picks the output interface). Prints one line:
 *
 *   {"sent":S,"failed":F,"too_big":T,"no_buffer":B,"invalid":I,"last_errno":E}
 *
 * Exit status 0 when the injector opened (whatever the sends did), 1 if not.
 */
#include "tool_common.h"

#include <getopt.h>
#include <net/if.h>

/* The injector and the core's checksum code, compiled into this tool
 * (tools are single files). */
#include "csum.c"
#include "inject.c"

static const char usage[] =
	"injectsend --src ADDR --dst ADDR --port P [--count N] [--size BYTES]\n"
	"           [--mark M] [--dev IFNAME] [--rate PPS]";

enum {
	SRC_PORT = 40000,
	UDP_HDR = 8,
	PKT_MAX = 65535,
};

static uint8_t pkt[PKT_MAX];

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Build the packet for @seq; return its length. */
static uint32_t build(int v6, const void *src, const void *dst, uint16_t port,
		      uint32_t size, uint64_t seq)
{
	uint32_t l3 = v6 ? 40 : 20, ulen = UDP_HDR + size, len = l3 + ulen;
	uint8_t *u = pkt + l3;
	uint64_t t = now_ns();

	memset(pkt, 0, len);
	if (v6) {
		pkt[0] = 0x60;
		put16(pkt + 4, ulen);
		pkt[6] = IPPROTO_UDP;
		pkt[7] = 64;
		memcpy(pkt + 8, src, 16);
		memcpy(pkt + 24, dst, 16);
	} else {
		pkt[0] = 0x45;
		put16(pkt + 2, len);
		put16(pkt + 4, (uint32_t)(seq & 0xffff) | 1);
		pkt[6] = 0x40;  /* DF */
		pkt[8] = 64;
		pkt[9] = IPPROTO_UDP;
		memcpy(pkt + 12, src, 4);
		memcpy(pkt + 16, dst, 4);
		/* the kernel fills in the IPv4 header checksum of a raw packet */
	}
	put16(u, SRC_PORT);
	put16(u + 2, port);
	put16(u + 4, ulen);
	for (int i = 0; i < 8; i++) {  /* little endian, as tool_common.h says */
		u[UDP_HDR + i] = (uint8_t)(seq >> (8 * i));
		u[UDP_HDR + 8 + i] = (uint8_t)(t >> (8 * i));
	}
	memset(u + UDP_HDR + TOOL_HDR_LEN, 0x5a, size - TOOL_HDR_LEN);
	if (ld_csum_fill_l4(pkt, len) < 0)
		die("cannot compute the UDP checksum");
	return len;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 'z' },
		{ "mark", required_argument, NULL, 'm' },
		{ "dev", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *src_s = NULL, *dst_s = NULL, *dev = NULL;
	uint64_t count = 1, size = 64, port = 0, mark = LD_INJECT_MARK_DEFAULT, rate = 0;
	unsigned char src[16], dst[16];
	uint32_t ifindex = 0;
	struct ld_inject inj;
	char err[256];
	int c, v6;

	tool_name = "injectsend";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': src_s = optarg; break;
		case 'd': dst_s = optarg; break;
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'n': count = parse_u64(usage, "--count", optarg, 1, 100000000); break;
		case 'z': size = parse_u64(usage, "--size", optarg, TOOL_HDR_LEN, 65000); break;
		case 'm': mark = parse_u64(usage, "--mark", optarg, 0, 0xffffffff); break;
		case 'i': dev = optarg; break;
		case 'r': rate = parse_u64(usage, "--rate", optarg, 0, 10000000); break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: usage_error(usage, "unknown option");
		}
	}
	if (!src_s || !dst_s || !port)
		usage_error(usage, "--src, --dst and --port are required");
	v6 = strchr(dst_s, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, src_s, src) != 1 ||
	    inet_pton(v6 ? AF_INET6 : AF_INET, dst_s, dst) != 1)
		usage_error(usage, "--src and --dst must be addresses of one family");
	if (dev && !(ifindex = if_nametoindex(dev)))
		die("interface %s:", dev);
	if (ld_inject_open(&inj, (uint32_t)mark, err, sizeof(err)) < 0)
		die("%s", err);

	uint64_t t0 = now_ns();
	for (uint64_t seq = 0; seq < count; seq++) {
		uint32_t len = build(v6, src, dst, (uint16_t)port, (uint32_t)size, seq);

		if (rate)
			sleep_until_ns(t0 + seq * TOOL_NS_PER_SEC / rate);
		(void)ld_inject_send_dev(&inj, pkt, len, ifindex);
	}
	printf("{\"sent\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"too_big\":%" PRIu64
	       ",\"no_buffer\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"last_errno\":%d}\n",
	       inj.sent, inj.failed, inj.too_big, inj.no_buffer, inj.invalid, inj.last_errno);
	ld_inject_close(&inj);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * lua_lib_bench.c - ns per packet of the Lua packet views (lua/divert/) next
 * to plain C doing the same work, in one run.
 *
 *   build/bench/lua_lib_bench [iterations] [script]    (from the repo root)
 *
 * For each case, C first: a straightforward implementation of the work on
 * the same bytes; then bench/lua_lib_bench.lua runs the Lua version in a
 * LuaJIT state created here. Each iteration handles one packet the way a
 * policy would: attach/parse it and do the work. Cases:
 *   ipv4_udp_port   parse IPv4 + UDP, read the destination port
 *   ipv6_ext2_port  parse IPv6 with two extension headers, read the port
 *   tcp_csum_1500   verify the full TCP checksum of a 1500-byte packet
 *   incr_update     rewrite the TCP destination port, RFC 1624 update
 * The goal (issue 3) is the Lua views within 1.5x of C. Each case runs five
 * times in each language and the fastest run is reported. Timing only: no
 * assertion here, tests live in tests/lua/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* The packets, as hex; the Lua side gets the same strings. */
static const char *const HEX_UDP4 =
	"4500005459cd0000401194aec0a8010bd157f912abbe00350040782459340120"
	"0001000000000001037777770774637064756d70036f72670000010001000029"
	"100000000000000c000a000842f5d00996f90b13";
/* ::1 > ::2, hop-by-hop (8) + destination options (8) + UDP 1000 > 53 */
static const char *const HEX_UDP6_EXT2 =
	"6000000000180040000000000000000000000000000000010000000000000000"
	"00000000000000023c00010400000000110001040000000003e800350008ffff";

enum { TCP_LEN = 1500 };

struct bench_case {
	const char *name;
	double c_ns;
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (h[0] && h[1] && n < cap) {
		unsigned int b;

		if (sscanf(h, "%2x", &b) != 1)
			break;
		out[n++] = (uint8_t)b;
		h += 2;
	}
	return n;
}

static inline unsigned int rd16(const uint8_t *p) { return (unsigned int)p[0] << 8 | p[1]; }

/* The C references. noinline: each call is one packet, as in Lua. */

/*
 * The checks the Lua views make before they hand out a transport header:
 * IPv4 version, header and total length, protocol, not a later fragment,
 * room for the transport header. Returns its offset, or -1.
 */
static inline int c_ipv4_l4(const uint8_t *p, uint32_t len, unsigned int proto, uint32_t min)
{
	if (len < 20 || p[0] >> 4 != 4)
		return -1;
	uint32_t hl = (p[0] & 15u) * 4;
	uint32_t tot = rd16(p + 2);
	if (hl < 20 || hl > len || tot < hl)
		return -1;
	if (tot > len)
		tot = len;
	if (p[9] != proto || (rd16(p + 6) & 0x1fff))
		return -1;
	if (tot - hl < min)
		return -1;
	return (int)hl;
}

/* IPv4 + UDP destination port, with the same checks as the Lua view. */
static __attribute__((noinline)) int c_ipv4_udp_port(const uint8_t *p, uint32_t len)
{
	int off = c_ipv4_l4(p, len, 17, 8);

	return off < 0 ? -1 : (int)rd16(p + off + 2);
}

/* IPv6: walk the extension headers to UDP, read the destination port. */
static __attribute__((noinline)) int c_ipv6_port(const uint8_t *p, uint32_t len)
{
	if (len < 40 || p[0] >> 4 != 6)
		return -1;
	uint32_t end = 40 + rd16(p + 4);
	if (end > len)
		end = len;
	uint32_t off = 40;
	unsigned int nh = p[6];
	for (int n = 0; n < 16; n++) {
		uint32_t hl;

		if (nh == 0 || nh == 60 || nh == 43)
			hl = 0;
		else if (nh == 44)
			hl = 8;
		else
			break;
		if (off + 8 > end)
			return -1;
		if (hl == 0)
			hl = (p[off + 1] + 1u) * 8;
		if (off + hl > end)
			return -1;
		nh = p[off];
		off += hl;
	}
	if (nh != 17 || end - off < 8)
		return -1;
	return (int)rd16(p + off + 2);
}

/* Ones-complement sum of len bytes: 32-bit loads into a 64-bit sum. */
static uint32_t c_sum(const uint8_t *p, uint32_t len)
{
	uint64_t s = 0;
	uint32_t i = 0;

	for (; i + 4 <= len; i += 4) {
		uint32_t w;

		memcpy(&w, p + i, 4);
		s += w;
	}
	if (i + 2 <= len) {
		uint16_t w;

		memcpy(&w, p + i, 2);
		s += w;
		i += 2;
	}
	if (i < len)
		s += p[i];          /* little-endian: the high byte of a BE word */
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)__builtin_bswap16((uint16_t)s);
}

/* Verify the TCP checksum of an IPv4 packet (pseudo-header included). */
static __attribute__((noinline)) int c_tcp_csum_ok(const uint8_t *p, uint32_t len)
{
	if (len < 20 || p[0] >> 4 != 4)
		return -1;
	uint32_t hl = (p[0] & 15u) * 4, tot = rd16(p + 2);
	if (hl < 20 || tot > len || tot < hl + 20 || p[9] != 6)
		return -1;
	uint32_t l4 = tot - hl;
	uint64_t s = c_sum(p + hl, l4);
	s += rd16(p + 12) + rd16(p + 14) + rd16(p + 16) + rd16(p + 18) + 6 + l4;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

/* Rewrite the TCP destination port, update the checksum (RFC 1624 eqn 3). */
static __attribute__((noinline)) void c_incr(uint8_t *p, uint32_t len, unsigned int port)
{
	int off = c_ipv4_l4(p, len, 6, 20);

	if (off < 0 || (p[off + 12] >> 4) * 4u < 20)
		return;
	uint8_t *t = p + off;
	unsigned int old = rd16(t + 2);
	uint32_t s = (~rd16(t + 16) & 0xffff) + (~old & 0xffff) + port;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	t[2] = (uint8_t)(port >> 8);
	t[3] = (uint8_t)port;
	s = ~s & 0xffff;
	t[16] = (uint8_t)(s >> 8);
	t[17] = (uint8_t)s;
}

static volatile long sink;

/* Each case runs REPEAT times, C and Lua alike; the fastest run counts (the
 * least disturbed by whatever else the machine is doing). */
enum { REPEAT = 5 };

static void keep_min(double *best, double v)
{
	if (*best == 0 || v < *best)
		*best = v;
}

static void tcp_packet(uint8_t *p)
{
	/* IPv4 198.18.0.1 > 198.18.0.2, TCP 40000 > 80, ACK, 1460 bytes of data */
	memset(p, 0, TCP_LEN);
	p[0] = 0x45; p[2] = TCP_LEN >> 8; p[3] = TCP_LEN & 0xff; p[8] = 64; p[9] = 6;
	p[12] = 198; p[13] = 18; p[15] = 1; p[16] = 198; p[17] = 18; p[19] = 2;
	uint8_t *t = p + 20;
	t[0] = 40000 >> 8; t[1] = 40000 & 0xff; t[3] = 80; t[12] = 0x50; t[13] = 0x10;
	for (int i = 40; i < TCP_LEN; i++)
		p[i] = (uint8_t)(i * 7);
	uint64_t s = c_sum(t, TCP_LEN - 20);
	s += rd16(p + 12) + rd16(p + 14) + rd16(p + 16) + rd16(p + 18) + 6 + (TCP_LEN - 20);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	t[16] = (uint8_t)(s >> 8);
	t[17] = (uint8_t)s;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 2000000;
	const char *script = argc > 2 ? argv[2] : "bench/lua_lib_bench.lua";
	static uint8_t udp4[256], udp6[256], tcp[TCP_LEN];
	uint32_t n4 = (uint32_t)unhex(HEX_UDP4, udp4, sizeof(udp4));
	uint32_t n6 = (uint32_t)unhex(HEX_UDP6_EXT2, udp6, sizeof(udp6));
	struct bench_case cases[4] = {
		{ "ipv4_udp_port", 0 }, { "ipv6_ext2_port", 0 }, { "tcp_csum_1500", 0 }, { "incr_update", 0 },
	};
	long csum_iters = iters / 10;  /* the checksum case does 1500 bytes a time */
	double t;
	long acc = 0;

	if (iters <= 0) {
		fprintf(stderr, "usage: lua_lib_bench [iterations] [script]\n");
		return 2;
	}
	tcp_packet(tcp);
	if (c_ipv4_udp_port(udp4, n4) != 53 || c_ipv6_port(udp6, n6) != 53 || c_tcp_csum_ok(tcp, TCP_LEN) != 1) {
		fprintf(stderr, "lua_lib_bench: the C references disagree with the packets\n");
		return 1;
	}

	for (int r = 0; r < REPEAT; r++) {
		t = now_ns();
		for (long i = 0; i < iters; i++) {
			udp4[23] = (uint8_t)i;          /* vary the bytes: nothing to hoist */
			acc += c_ipv4_udp_port(udp4, n4);
		}
		keep_min(&cases[0].c_ns, (now_ns() - t) / (double)iters);
		udp4[23] = 0x35;

		t = now_ns();
		for (long i = 0; i < iters; i++) {
			udp6[59] = (uint8_t)i;
			acc += c_ipv6_port(udp6, n6);
		}
		keep_min(&cases[1].c_ns, (now_ns() - t) / (double)iters);
		udp6[59] = 0x35;

		t = now_ns();
		for (long i = 0; i < csum_iters; i++) {
			tcp[TCP_LEN - 1] = (uint8_t)i;
			acc += c_tcp_csum_ok(tcp, TCP_LEN);
		}
		keep_min(&cases[2].c_ns, (now_ns() - t) / (double)csum_iters);
		tcp_packet(tcp);

		t = now_ns();
		for (long i = 0; i < iters; i++)
			c_incr(tcp, TCP_LEN, (unsigned int)i & 0xffff);
		keep_min(&cases[3].c_ns, (now_ns() - t) / (double)iters);
		acc += tcp[17];
		tcp_packet(tcp);
	}
	sink = acc;

	/* The Lua side: lua_lib_bench.lua(hex4, hex6, iters, csum_iters) -> {name = ns} */
	lua_State *L = luaL_newstate();
	if (!L) {
		fprintf(stderr, "lua_lib_bench: cannot create a Lua state\n");
		return 1;
	}
	luaL_openlibs(L);
	if (luaL_dostring(L, "package.path = './lua/?.lua;./lua/?/init.lua;' .. package.path") ||
	    luaL_loadfile(L, script)) {
		fprintf(stderr, "lua_lib_bench: %s\n", lua_tostring(L, -1));
		lua_close(L);
		return 1;
	}
	lua_pushstring(L, HEX_UDP4);
	lua_pushstring(L, HEX_UDP6_EXT2);
	lua_pushnumber(L, (lua_Number)iters);
	lua_pushnumber(L, (lua_Number)csum_iters);
	lua_pushnumber(L, REPEAT);
	if (lua_pcall(L, 5, 1, 0) || !lua_istable(L, -1)) {
		fprintf(stderr, "lua_lib_bench: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "no result table");
		lua_close(L);
		return 1;
	}
	printf("%-16s %10s %10s %7s   (best of %d runs of %ld packets, %ld for the checksum)\n",
	       "case", "C ns/pkt", "Lua ns/pkt", "Lua/C", REPEAT, iters, csum_iters);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lua_getfield(L, -1, cases[i].name);
		double lua_ns = lua_tonumber(L, -1);
		lua_pop(L, 1);
		printf("%-16s %10.2f %10.2f %6.2fx\n", cases[i].name, cases[i].c_ns, lua_ns,
		       cases[i].c_ns > 0 ? lua_ns / cases[i].c_ns : 0.0);
	}
	lua_close(L);
	return 0;
}

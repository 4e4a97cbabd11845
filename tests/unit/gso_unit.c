// SPDX-License-Identifier: MIT
/*
 * gso_unit.c - unit tests of core/gso_segment.c and core/hold_store.c.
 *
 * Segmentation is checked on real GSO packets captured on a sender
 * (../shared/pcaps/gso-ipv4.pcap, gso-ipv6.pcap: one 7 KB TCP packet each)
 * against known answers: the number of segments, each segment's sequence
 * number, IPv4 id, lengths and flags, valid IP and TCP checksums (summed
 * here independently), and the payloads put back together equal the
 * original's. BIG TCP packets (bigtcp-*.pcap) are refused, as the header
 * says. The store is checked for put/get/free, tail refusal when full, and
 * that it still reads right after its region moved to another address.
 * Built with ASan+UBSan (Makefile: build/unit/). Prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/csum.c"
#include "../../core/gso_segment.c"
#include "../../core/hold_store.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

enum { ETH_HLEN_ = 14, MAXPKT = 1 << 17 };

static const char *pcap_dir(void)
{
	const char *d = getenv("LD_PCAP_DIR");

	return d ? d : "../shared/pcaps";
}

/* The first packet of an Ethernet pcap, without its link header; its length or 0. */
static uint32_t read_first(const char *name, uint8_t *out)
{
	char path[512];
	uint8_t gh[24], rh[16];
	uint32_t caplen;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", pcap_dir(), name);
	f = fopen(path, "rb");
	if (!f)
		return 0;
	if (fread(gh, 1, 24, f) != 24 || fread(rh, 1, 16, f) != 16) {
		fclose(f);
		return 0;
	}
	caplen = (uint32_t)rh[8] | (uint32_t)rh[9] << 8 | (uint32_t)rh[10] << 16 |
		 (uint32_t)rh[11] << 24;
	if (caplen <= ETH_HLEN_ || caplen > MAXPKT || fread(out, 1, caplen, f) != caplen) {
		fclose(f);
		return 0;
	}
	fclose(f);
	memmove(out, out + ETH_HLEN_, caplen - ETH_HLEN_);
	return caplen - ETH_HLEN_;
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) << 16 | rd16(p + 2); }

static uint32_t sum_bytes(const uint8_t *p, uint32_t n, uint32_t acc)
{
	for (uint32_t i = 0; i + 1 < n; i += 2)
		acc += rd16(p + i);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static int folds_to_ffff(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return acc == 0xffff;
}

/* The TCP checksum of a segment is right (pseudo-header summed here). */
static int tcp_csum_ok(const uint8_t *s, uint32_t len, int v6, uint32_t l3)
{
	uint32_t acc = v6 ? sum_bytes(s + 8, 32, 6 + (len - l3)) : sum_bytes(s + 12, 8, 6 + (len - l3));

	return folds_to_ffff(sum_bytes(s + l3, len - l3, acc));
}

/*
 * Cut @pkt for @mtu and check every segment against the known answers:
 * @want_nseg segments, all but the last of @want_mss payload bytes.
 */
static void check_segments(const uint8_t *pkt, uint32_t len, uint32_t mtu, int v6,
			   uint32_t want_nseg, uint32_t want_mss)
{
	static uint8_t seg[MAXPKT], joined[MAXPKT];
	struct ld_gso_plan pl;
	uint32_t l3 = v6 ? 40 : (uint32_t)(pkt[0] & 15) * 4;
	uint32_t thl = (uint32_t)(pkt[l3 + 12] >> 4) * 4, hdr = l3 + thl;
	uint32_t seq0 = rd32(pkt + l3 + 4), id0 = rd16(pkt + 4), off = 0;
	uint8_t flags0 = pkt[l3 + 13];

	CHECK(ld_gso_plan(pkt, len, mtu, &pl) == 0);
	CHECK(pl.nseg == want_nseg);
	CHECK(pl.mss == want_mss);
	CHECK(pl.hdr_len == hdr);
	for (uint32_t i = 0; i < pl.nseg; i++) {
		uint32_t n = ld_gso_build(&pl, pkt, i, seg);
		uint32_t pay = n - hdr;
		uint8_t fl = seg[l3 + 13];

		CHECK(n <= mtu);
		CHECK(i + 1 == pl.nseg || pay == want_mss);
		CHECK(rd32(seg + l3 + 4) == seq0 + off);
		CHECK(memcmp(seg + l3 + 20, pkt + l3 + 20, thl - 20) == 0);  /* options */
		CHECK(rd32(seg + l3 + 8) == rd32(pkt + l3 + 8));                  /* ack */
		if (v6) {
			CHECK(rd16(seg + 4) == n - 40);
		} else {
			CHECK(rd16(seg + 2) == n);
			CHECK(rd16(seg + 4) == ((id0 + i) & 0xffff));
			CHECK(folds_to_ffff(sum_bytes(seg, l3, 0)));
		}
		CHECK(tcp_csum_ok(seg, n, v6, l3));
		/* FIN and PSH only on the last, CWR only on the first */
		CHECK((fl & 0x09) == (i + 1 == pl.nseg ? (flags0 & 0x09) : 0));
		CHECK((fl & 0x80) == (i == 0 ? (flags0 & 0x80) : 0));
		CHECK((fl & ~0x89) == (flags0 & ~0x89));
		memcpy(joined + off, seg + hdr, pay);
		off += pay;
	}
	CHECK(off == len - hdr);
	CHECK(memcmp(joined, pkt + hdr, len - hdr) == 0);
}

static void test_segmentation(void)
{
	static uint8_t p4[MAXPKT], p6[MAXPKT], big[MAXPKT];
	uint32_t n4 = read_first("gso-ipv4.pcap", p4), n6 = read_first("gso-ipv6.pcap", p6), n;
	struct ld_gso_plan pl;

	CHECK(n4 == 20 + 32 + 7240);
	CHECK(n6 == 40 + 32 + 7140);
	if (n4 != 20 + 32 + 7240 || n6 != 40 + 32 + 7140)
		return;
	/* 7240 = 5 x 1448, 7140 = 5 x 1428: MTU 1500 with timestamps */
	check_segments(p4, n4, 1500, 0, 5, 1448);
	check_segments(p6, n6, 1500, 1, 5, 1428);
	/* a smaller MTU leaves a short last segment: 7240 = 5 x 1228 + 1100 */
	check_segments(p4, n4, 1280, 0, 6, 1228);
	check_segments(p6, n6, 1280, 1, 6, 1208);
	/* FIN, PSH and CWR set on the original */
	p4[20 + 13] |= 0x89;
	check_segments(p4, n4, 1500, 0, 5, 1448);
	p6[40 + 13] |= 0x89;
	check_segments(p6, n6, 1400, 1, 6, 1328);
	/* one that fits is one segment, unchanged but for its checksum */
	CHECK(ld_gso_plan(p4, n4, 9000, &pl) == 0 && pl.nseg == 1);
	/* refused: BIG TCP (IPv4 total length 0; IPv6 hop-by-hop jumbo), UDP, fragments,
	 * a TCP header that leaves no room in the MTU, a short buffer */
	n = read_first("bigtcp-ipv4.pcap", big);
	CHECK(n > 0 && ld_gso_plan(big, n, 1500, &pl) < 0);
	n = read_first("bigtcp-ipv6-hbh.pcap", big);
	CHECK(n > 0 && ld_gso_plan(big, n, 1500, &pl) < 0);
	memcpy(big, p4, n4);
	big[9] = 17;
	CHECK(ld_gso_plan(big, n4, 1500, &pl) < 0);
	big[9] = 6;
	big[6] |= 0x20;  /* more fragments */
	CHECK(ld_gso_plan(big, n4, 1500, &pl) < 0);
	CHECK(ld_gso_plan(p4, n4, 52, &pl) < 0);
	CHECK(ld_gso_plan(p4, n4 - 1, 1500, &pl) < 0);
	CHECK(ld_gso_plan(p6, 39, 1500, &pl) < 0);
}

static void test_store(void)
{
	size_t size = 64 * 1024;
	uint8_t *a = aligned_alloc(64, size), *b = aligned_alloc(64, size);
	static uint8_t in[65535], out[65535];
	struct ld_store *s;
	uint32_t h1, h2, h3, cap;

	for (uint32_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	CHECK(ld_store_init(a, 100) == NULL);
	s = ld_store_init(a, size);
	CHECK(s != NULL);
	cap = s->nchunks * LD_STORE_CHUNK;
	CHECK(cap > 60000 && cap <= size);
	h1 = ld_store_put(s, in, 1000);
	h2 = ld_store_put(s, in + 5, 40000);
	CHECK(h1 != LD_STORE_NONE && h2 != LD_STORE_NONE);
	CHECK(ld_store_used_bytes(s) == 2 * 512 + 79 * 512);
	/* full: the newest does not fit, nothing changes */
	CHECK(ld_store_put(s, in, 30000) == LD_STORE_NONE);
	CHECK(ld_store_put(s, in, 0) == LD_STORE_NONE);
	CHECK(ld_store_put(s, in, 65536) == LD_STORE_NONE);
	CHECK(s->stored == 2);
	ld_store_get(s, h2, 40000, out);
	CHECK(memcmp(out, in + 5, 40000) == 0);
	/* offsets, not pointers: the region read at another address */
	memcpy(b, a, size);
	memset(out, 0, sizeof(out));
	ld_store_get((struct ld_store *)b, h1, 1000, out);
	CHECK(memcmp(out, in, 1000) == 0);
	ld_store_free(s, h2);
	h3 = ld_store_put(s, in + 9, 30000);
	CHECK(h3 != LD_STORE_NONE);
	ld_store_get(s, h1, 1000, out);
	CHECK(memcmp(out, in, 1000) == 0);
	ld_store_get(s, h3, 30000, out);
	CHECK(memcmp(out, in + 9, 30000) == 0);
	ld_store_free(s, h1);
	ld_store_free(s, h3);
	ld_store_free(s, LD_STORE_NONE);
	CHECK(s->nfree == s->nchunks && s->stored == 0 && ld_store_used_bytes(s) == 0);
	free(a);
	free(b);
}

int main(void)
{
	test_segmentation();
	test_store();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * core_unit.c - unit tests of the C core that need no kernel: the netlink
 * message parser and verdict builder (including the conntrack attributes
 * this test machine's kernel never sends), the timer heap, and the checksum
 * used for injected copies. Built with ASan+UBSan (Makefile: build/unit/).
 * Prints "N passed, N failed".
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/counters.c"
#include "../../core/csum.c"
#include "../../core/log.c"
#include "../../core/nfq.c"
#include "../../core/nfq_recv.c"
#include "../../core/nfq_verdict.c"
#include "../../core/timer_heap.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* A packet message as the kernel sends it, with every attribute we read. */
static size_t build_packet_msg(uint8_t *buf, const uint8_t *payload, uint32_t plen)
{
	struct nlmsghdr *nlh = nfq_nlmsg_put((char *)buf, NFQNL_MSG_PACKET, 5);
	struct nfqnl_msg_packet_hdr ph = { .packet_id = htonl(77), .hw_protocol = htons(0x86dd),
					   .hook = 3 };
	struct nlattr *ct;

	mnl_attr_put(nlh, NFQA_PACKET_HDR, sizeof(ph), &ph);
	mnl_attr_put_u32(nlh, NFQA_MARK, htonl(0x2a));
	mnl_attr_put_u32(nlh, NFQA_IFINDEX_INDEV, htonl(4));
	mnl_attr_put_u32(nlh, NFQA_IFINDEX_OUTDEV, htonl(9));
	mnl_attr_put_u32(nlh, NFQA_UID, htonl(65534));
	mnl_attr_put_u32(nlh, NFQA_GID, htonl(100));
	mnl_attr_put_u32(nlh, NFQA_CT_INFO, htonl(2));
	ct = mnl_attr_nest_start(nlh, NFQA_CT);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(0xbeef));
	mnl_attr_nest_end(nlh, ct);
	mnl_attr_put_u32(nlh, NFQA_SKB_INFO, htonl(NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY));
	mnl_attr_put_u32(nlh, NFQA_CAP_LEN, htonl(9000));
	mnl_attr_put(nlh, NFQA_PAYLOAD, plen, payload);
	return nlh->nlmsg_len;
}

static void test_parse(void)
{
	static uint8_t slot[LD_RX_SLOT];
	uint8_t payload[40] = { 0x60 };
	struct ld_counters c = { 0 };
	struct ld_nfq q = { .c = &c };
	struct ld_packet p;
	size_t n = build_packet_msg(slot, payload, sizeof(payload));

	q.cfg.default_verdict = LD_DROP;
	CHECK(parse_packet(&q, (struct nlmsghdr *)slot, slot + LD_RX_SLOT, &p, 1234) == 0);
	CHECK(n > sizeof(payload));
	CHECK(p.id == 77 && p.hw_proto == 0x86dd && p.hook == 3);
	CHECK(p.mark == 0x2a && p.indev == 4 && p.outdev == 9);
	CHECK(p.uid == 65534 && p.gid == 100);
	CHECK((p.flags & (LD_PKT_HAS_UID | LD_PKT_HAS_GID)) == (LD_PKT_HAS_UID | LD_PKT_HAS_GID));
	CHECK((p.flags & LD_PKT_HAS_CT) && p.ct_info == 2 && p.ct_mark == 0xbeef);
	CHECK((p.flags & LD_PKT_GSO) && (p.flags & LD_PKT_CSUM_NOTREADY));
	CHECK(p.len == sizeof(payload) && p.orig_len == 9000 && (p.flags & LD_PKT_TRUNCATED));
	CHECK(p.data[0] == 0x60 && p.data > slot && p.data < slot + n);  /* zero copy */
	CHECK(p.cap == LD_PACKET_MAX);          /* room to grow in place */
	CHECK(p.verdict == LD_DROP && p.set == 0 && p.tstamp_ns == 1234);
	CHECK(q.last_id == 77);
}

/* The attributes of the verdict message built for one packet. */
static void test_verdict(void)
{
	struct ld_verdict_msg tx[LD_BATCH_MAX + 1];
	struct iovec iov[3 * (LD_BATCH_MAX + 1)];
	struct ld_counters c = { 0 };
	struct ld_nfq q = { .c = &c, .tx = tx, .tx_iov = iov, .tx_cap = LD_BATCH_MAX + 1 };
	const uint8_t payload[7] = { 1, 2, 3, 4, 5, 6, 7 };
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	const struct nlmsghdr *nlh;
	const struct nfqnl_msg_verdict_hdr *vh;
	const struct nlattr *a;
	uint32_t ctmark = 0;

	q.cfg.queue = 5;
	ld_nfq_verdict(&q, 77, LD_QUEUE | (9u << 16), LD_SET_MARK | LD_SET_CT_MARK, 0x2a, 0xbeef,
		       payload, sizeof(payload));
	CHECK(q.tx_n == 1);
	nlh = (const struct nlmsghdr *)tx[0].hdr;
	CHECK((nlh->nlmsg_type & 0xff) == NFQNL_MSG_VERDICT);
	/* header part, then the payload by iovec, then padding to 4 bytes */
	CHECK(nlh->nlmsg_len == tx[0].hdr_len + 8);
	CHECK(tx[0].payload == payload && tx[0].payload_len == 7);
	/* parse the header part with the payload attribute's length trimmed */
	{
		uint8_t whole[256];

		memcpy(whole, tx[0].hdr, tx[0].hdr_len);
		memcpy(whole + tx[0].hdr_len, payload, 7);
		whole[tx[0].hdr_len + 7] = 0;
		CHECK(nfq_nlmsg_parse((const struct nlmsghdr *)whole, attr) >= 0);
		CHECK(attr[NFQA_VERDICT_HDR] && attr[NFQA_MARK] && attr[NFQA_CT] && attr[NFQA_PAYLOAD]);
		vh = mnl_attr_get_payload(attr[NFQA_VERDICT_HDR]);
		CHECK(ntohl(vh->id) == 77 && ntohl(vh->verdict) == (LD_QUEUE | (9u << 16)));
		CHECK(ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) == 0x2a);
		mnl_attr_for_each_nested(a, attr[NFQA_CT])
			if (mnl_attr_get_type(a) == CTA_MARK)
				ctmark = ntohl(mnl_attr_get_u32(a));
		CHECK(ctmark == 0xbeef);
		CHECK(mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) == 7);
		CHECK(memcmp(mnl_attr_get_payload(attr[NFQA_PAYLOAD]), payload, 7) == 0);
	}
	ld_nfq_verdict_batch(&q, 99, LD_PASS);
	nlh = (const struct nlmsghdr *)tx[1].hdr;
	CHECK((nlh->nlmsg_type & 0xff) == NFQNL_MSG_VERDICT_BATCH && tx[1].payload == NULL);
	q.tx_n = 0;
}

static void test_heap(void)
{
	struct ld_heap h;
	struct ld_held e = { 0 }, out;
	uint64_t last = 0;
	int ok = 1;

	CHECK(ld_heap_init(&h, 1000) == 0);
	srand(7);
	for (uint32_t i = 0; i < 1000; i++) {
		e.due_ns = (uint64_t)(rand() % 50);
		e.id = i;
		if (ld_heap_push(&h, &e) != 0)
			ok = 0;
	}
	CHECK(ld_heap_push(&h, &e) == -1);           /* full: refused, nothing allocated */
	uint32_t last_id_at_due[50];
	memset(last_id_at_due, 0xff, sizeof(last_id_at_due));
	while (ld_heap_peek(&h)) {
		ld_heap_pop(&h, &out);
		if (out.due_ns < last)
			ok = 0;                       /* ordered by release time */
		if (last_id_at_due[out.due_ns] != 0xffffffffu && out.id < last_id_at_due[out.due_ns])
			ok = 0;                       /* equal times keep insertion order */
		last_id_at_due[out.due_ns] = out.id;
		last = out.due_ns;
	}
	CHECK(ok);
	ld_heap_free(&h);
}

/* Reference: the same sum, computed the slow obvious way. */
static uint16_t ref_udp4(const uint8_t *ip, uint32_t l4len)
{
	uint32_t s = 0;
	uint8_t buf[2048];

	memcpy(buf, ip + 12, 8);
	buf[8] = 0; buf[9] = 17; buf[10] = (uint8_t)(l4len >> 8); buf[11] = (uint8_t)l4len;
	memcpy(buf + 12, ip + 20, l4len);
	buf[12 + 6] = buf[12 + 7] = 0;
	for (uint32_t i = 0; i < 12 + l4len; i += 2)
		s += (uint32_t)(buf[i] << 8) + (i + 1 < 12 + l4len ? buf[i + 1] : 0);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	return s ? (uint16_t)s : 0xffff;
}

static void test_csum(void)
{
	uint8_t pkt[1500];
	int ok = 1;

	srand(11);
	for (int round = 0; round < 200; round++) {
		uint32_t l4len = 8 + (uint32_t)(rand() % 1000), len = 20 + l4len;

		for (uint32_t i = 0; i < len; i++)
			pkt[i] = (uint8_t)rand();
		pkt[0] = 0x45; pkt[2] = (uint8_t)(len >> 8); pkt[3] = (uint8_t)len;
		pkt[6] = pkt[7] = 0; pkt[9] = 17;
		if (ld_csum_fill_l4(pkt, len) != 0 ||
		    (uint16_t)(pkt[26] << 8 | pkt[27]) != ref_udp4(pkt, l4len))
			ok = 0;
	}
	CHECK(ok);
	pkt[6] = 0x20;                       /* a fragment is left alone */
	CHECK(ld_csum_fill_l4(pkt, 40) == -1);
	CHECK(ld_csum_fill_l4(pkt, 10) == -1);
}

/*
 * The vectors lua/divert/checksum.lua is tested with too
 * (tests/vectors/l4_checksums.txt): C and Lua each keep their own checksum
 * (the core completes checksums before a raw send, Lua after an edit), and
 * the shared vectors keep them agreeing.
 */
static void test_csum_vectors(void)
{
	FILE *f = fopen("tests/vectors/l4_checksums.txt", "r");
	char line[8192], name[64], hex[8000];
	int n = 0, bad = 0;

	CHECK(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		uint8_t pkt[4000];
		uint32_t len = 0, l4off, off;
		uint16_t want;

		if (line[0] == '#' || sscanf(line, "%63s %7999s", name, hex) != 2)
			continue;
		for (size_t i = 0; hex[i] && hex[i + 1] && len < sizeof(pkt); i += 2) {
			unsigned v;

			sscanf(hex + i, "%2x", &v);
			pkt[len++] = (uint8_t)v;
		}
		l4off = pkt[0] >> 4 == 4 ? (uint32_t)(pkt[0] & 15) * 4 : 40;
		switch (pkt[0] >> 4 == 4 ? pkt[9] : pkt[6]) {
		case 6: off = l4off + 16; break;
		case 17: off = l4off + 6; break;
		default: off = l4off + 2; break;   /* ICMP, ICMPv6 */
		}
		want = (uint16_t)(pkt[off] << 8 | pkt[off + 1]);
		pkt[off] = pkt[off + 1] = 0;
		n++;
		if (ld_csum_fill_l4(pkt, len) != 0 || (uint16_t)(pkt[off] << 8 | pkt[off + 1]) != want) {
			fprintf(stderr, "checksum vector %s: got %02x%02x, want %04x\n", name, pkt[off],
				pkt[off + 1], want);
			bad++;
		}
	}
	fclose(f);
	CHECK(n >= 10 && bad == 0);
}

int main(void)
{
	test_parse();
	test_verdict();
	test_heap();
	test_csum();
	test_csum_vectors();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * nfq_parse_fuzz.c - libFuzzer target: the netlink packet-attribute parser.
 *
 * The input is what one recvmmsg() slot would hold: netlink messages, each
 * possibly an NFQNL_MSG_PACKET with attributes. It is copied into a buffer
 * of exactly its size, so ASan sees any read past the datagram; every
 * packet the parser accepts is then read end to end and its length and
 * capacity are checked against the buffer.
 *   make fuzz            (longer runs; corpus in build/fuzz/corpus-nfq)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/counters.c"
#include "../core/log.c"
#include "../core/nfq.c"
#include "../core/nfq_recv.c"
#include "../core/nfq_verdict.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ld_counters c;
	static struct ld_log_limit lim;
	static struct ld_verdict_msg tx[LD_BATCH_MAX + 1];
	static struct iovec tx_iov[3 * (LD_BATCH_MAX + 1)];
	static struct ld_packet pkts[LD_BATCH_MAX];
	/* no socket: a verdict for a packet beyond the batch fails to send (counted) */
	struct ld_nfq q = { .fd = -1, .c = &c, .lim = &lim, .tx = tx, .tx_iov = tx_iov,
			    .tx_cap = LD_BATCH_MAX + 1, .send_max = LD_SEND_BYTES_MAX,
			    .cfg = { .default_verdict = LD_PASS } };
	uint8_t *buf;
	int n;
	volatile uint8_t sink = 0;

	if (size > LD_RX_SLOT)
		return 0;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	/* the receive loop's own code for one datagram */
	n = parse_slot(&q, buf, (int)size, buf + size, pkts, 0, 0);
	for (int i = 0; i < n; i++) {
		const struct ld_packet *p = &pkts[i];

		if (!p->data)
			continue;
		/* the payload lies in the buffer, and cap does not reach past it */
		if (p->data < buf || p->data + p->len > buf + size || p->data + p->cap > buf + size ||
		    p->len > p->cap || p->cap > LD_PACKET_MAX)
			abort();
		for (uint32_t k = 0; k < p->len; k++)
			sink ^= p->data[k];
	}
	q.tx_n = 0;
	(void)sink;
	free(buf);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * bare_nfq_batched - the fastest plain-C NFQUEUE accept loop we know how to
 * write: the limit luadivert is measured against.
 *
 *   bare_nfq_batched --queue N [--maxlen N]
 *
 * Per batch: ONE recvmmsg (MSG_WAITFORONE: block for the first message,
 * then take what is already there, up to BATCH_MAX), find each packet's id
 * (NFQA_PACKET_HDR is the first attribute, nothing else is parsed), and ONE
 * sendmsg carrying a single NFQNL_MSG_VERDICT_BATCH that accepts every
 * packet up to the last id. The kernel hands packets over in id order and
 * the batch verdict covers "every queued id up to this one", so one message
 * answers the whole batch.
 */
#include "bare_nfq.h"

#include <sys/mman.h>

enum { BATCH_MAX = 64 };   /* = LD_BATCH_MAX, the engine's batch */

int main(int argc, char **argv)
{
	static struct iovec iov[BATCH_MAX];
	static struct mmsghdr msgs[BATCH_MAX];
	char vbuf[256];
	struct bare b;

	bare_name = "bare_nfq_batched";
	bare_open(&b, argc, argv);

	/* mmap: the pages of a slot are touched only as far as packets reach */
	uint8_t *rx = mmap(NULL, (size_t)BATCH_MAX * BARE_SLOT, PROT_READ | PROT_WRITE,
	                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rx == MAP_FAILED)
		bare_die("mmap");
	for (int i = 0; i < BATCH_MAX; i++) {
		iov[i].iov_base = rx + (size_t)i * BARE_SLOT;
		iov[i].iov_len = BARE_SLOT;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	while (!bare_stop) {
		if (bare_report) {
			bare_report = 0;
			bare_print(&b);
		}
		int n = recvmmsg(b.fd, msgs, BATCH_MAX, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS || errno == ENOMEM) {
				b.recv_errors++;   /* the kernel counts what it dropped */
				continue;
			}
			bare_die("recvmmsg");
		}
		uint32_t last = 0, got = 0;
		for (int i = 0; i < n; i++) {
			const struct nlmsghdr *nlh = iov[i].iov_base;
			int len = (int)msgs[i].msg_len;

			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				b.recv_errors++;
				continue;
			}
			for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
				if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFQNL_MSG_PACKET)
					continue;
				int64_t id = bare_packet_id(nlh);
				if (id < 0)
					continue;
				last = (uint32_t)id;
				got++;
			}
		}
		if (!got)
			continue;
		struct nlmsghdr *v = nfq_nlmsg_put(vbuf, NFQNL_MSG_VERDICT_BATCH, (int)b.queue);
		nfq_nlmsg_verdict_put(v, (int)last, NF_ACCEPT);
		if (mnl_socket_sendto(b.nl, v, v->nlmsg_len) < 0 && errno != EINTR)
			bare_die("sendmsg verdict");
		b.packets += got;
		b.batches++;
		if (got > b.max_batch)
			b.max_batch = got;
	}
	if (munmap(rx, (size_t)BATCH_MAX * BARE_SLOT) < 0)
		bare_die("munmap");
	return bare_close(&b);
}

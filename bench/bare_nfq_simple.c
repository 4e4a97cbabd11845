/* SPDX-License-Identifier: MIT */
/*
 * bare_nfq_simple - the textbook NFQUEUE accept loop (as in
 * libnetfilter_queue's nf-queue example): one recv per packet, parse its
 * attributes with nfq_nlmsg_parse, one NFQNL_MSG_VERDICT sendmsg per packet.
 *
 *   bare_nfq_simple --queue N [--maxlen N]
 *
 * The benchmark shows how far batching (bare_nfq_batched, luadivert) is
 * from this.
 */
#include "bare_nfq.h"

int main(int argc, char **argv)
{
	static uint8_t buf[BARE_SLOT];
	char vbuf[256];
	struct bare b;

	bare_name = "bare_nfq_simple";
	bare_open(&b, argc, argv);

	while (!bare_stop) {
		if (bare_report) {
			bare_report = 0;
			bare_print(&b);
		}
		ssize_t r = recv(b.fd, buf, sizeof(buf), 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS || errno == ENOMEM) {
				b.recv_errors++;
				continue;
			}
			bare_die("recv");
		}
		int len = (int)r;
		for (const struct nlmsghdr *nlh = (const void *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			struct nlattr *attr[NFQA_MAX + 1] = { 0 };

			if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFQNL_MSG_PACKET)
				continue;
			if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
				continue;
			const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
			struct nlmsghdr *v = nfq_nlmsg_put(vbuf, NFQNL_MSG_VERDICT, (int)b.queue);
			nfq_nlmsg_verdict_put(v, (int)ntohl(ph->packet_id), NF_ACCEPT);
			if (mnl_socket_sendto(b.nl, v, v->nlmsg_len) < 0 && errno != EINTR)
				bare_die("sendmsg verdict");
			b.packets++;
			b.batches++;
			b.max_batch = 1;
		}
	}
	return bare_close(&b);
}

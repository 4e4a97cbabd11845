// SPDX-License-Identifier: MIT
/*
 * nfq_verdict.c - the batched verdicts (nfq.h): each verdict is built in a
 * slot of the transmit array (header, mark, conntrack mark, and a payload
 * attribute whose data stays in the receive buffer, sent through an iovec),
 * and ld_nfq_flush() sends them with as few sendmsg calls as the socket's
 * send buffer allows.
 */
#include "nfq_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t zero_pad[MNL_ALIGNTO];

static struct ld_verdict_msg *tx_slot(struct ld_nfq *q)
{
	if (q->tx_n == q->tx_cap)
		ld_nfq_flush(q);
	return &q->tx[q->tx_n++];
}

void ld_nfq_verdict(struct ld_nfq *q, uint32_t id, uint32_t verdict, uint32_t set,
		    uint32_t mark, uint32_t ct_mark, const uint8_t *payload, uint32_t len)
{
	struct ld_verdict_msg *m = tx_slot(q);
	struct nlmsghdr *nlh = nfq_nlmsg_put((char *)m->hdr, NFQNL_MSG_VERDICT, q->cfg.queue);

	nfq_nlmsg_verdict_put(nlh, (int)id, (int)verdict);
	if (set & LD_SET_MARK)
		nfq_nlmsg_verdict_put_mark(nlh, mark);
	if (set & LD_SET_CT_MARK) {
		struct nlattr *nest = mnl_attr_nest_start(nlh, NFQA_CT);

		mnl_attr_put_u32(nlh, CTA_MARK, htonl(ct_mark));
		mnl_attr_nest_end(nlh, nest);
	}
	m->payload = NULL;
	m->payload_len = 0;
	if (payload) {
		struct nlattr *a = mnl_nlmsg_get_payload_tail(nlh);

		a->nla_type = NFQA_PAYLOAD;
		a->nla_len = (uint16_t)(MNL_ATTR_HDRLEN + len);
		nlh->nlmsg_len += MNL_ATTR_HDRLEN;
		m->hdr_len = nlh->nlmsg_len;
		nlh->nlmsg_len += MNL_ALIGN(len);
		m->payload = payload;
		m->payload_len = len;
		return;
	}
	m->hdr_len = nlh->nlmsg_len;
}

void ld_nfq_verdict_batch(struct ld_nfq *q, uint32_t max_id, uint32_t verdict)
{
	struct ld_verdict_msg *m = tx_slot(q);
	struct nlmsghdr *nlh = nfq_nlmsg_put((char *)m->hdr, NFQNL_MSG_VERDICT_BATCH,
					     q->cfg.queue);

	nfq_nlmsg_verdict_put(nlh, (int)max_id, (int)verdict);
	m->hdr_len = nlh->nlmsg_len;
	m->payload = NULL;
	m->payload_len = 0;
}

static uint32_t msg_bytes(const struct ld_verdict_msg *m)
{
	return m->hdr_len + MNL_ALIGN(m->payload_len);
}

/*
 * Send the verdict messages tx[first .. first+n) with one sendmsg. When
 * the kernel refuses the size (EMSGSIZE: more than the socket's send
 * buffer, whatever we were told) or cannot allocate it (ENOBUFS, ENOMEM),
 * send the two halves separately, in order, and remember the smaller size.
 */
static void send_msgs(struct ld_nfq *q, uint32_t first, uint32_t n)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct msghdr mh = { .msg_name = &kernel, .msg_namelen = sizeof(kernel) };
	size_t niov = 0, bytes = 0;

	for (uint32_t i = first; i < first + n; i++) {
		struct ld_verdict_msg *m = &q->tx[i];

		q->tx_iov[niov++] = (struct iovec){ m->hdr, m->hdr_len };
		if (m->payload) {
			q->tx_iov[niov++] = (struct iovec){ (void *)m->payload, m->payload_len };
			if (MNL_ALIGN(m->payload_len) != m->payload_len)
				q->tx_iov[niov++] = (struct iovec){
					(void *)zero_pad, MNL_ALIGN(m->payload_len) - m->payload_len };
		}
		bytes += msg_bytes(m);
	}
	mh.msg_iov = q->tx_iov;
	mh.msg_iovlen = niov;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (sendmsg(q->fd, &mh, 0) >= 0)
			return;
		if (errno != EINTR)
			break;
	}
	if (n > 1 && (errno == EMSGSIZE || errno == ENOBUFS || errno == ENOMEM)) {
		if (errno == EMSGSIZE && bytes / 2 < q->send_max)
			q->send_max = (uint32_t)(bytes / 2);
		send_msgs(q, first, n / 2);
		send_msgs(q, first + n / 2, n - n / 2);
		return;
	}
	q->c->send_errors++;
	ld_log_limited(q->lim, "queue %u: sending %u verdicts (%zu bytes): %s", q->cfg.queue, n,
		       bytes, strerror(errno));
}

void ld_nfq_flush(struct ld_nfq *q)
{
	uint32_t first = 0, bytes = 0, niov = 0;

	for (uint32_t i = 0; i < q->tx_n; i++) {
		uint32_t total = msg_bytes(&q->tx[i]);

		if (i > first && (bytes + total > q->send_max || niov + 3 > LD_SEND_IOV_MAX)) {
			send_msgs(q, first, i - first);
			first = i;
			bytes = niov = 0;
		}
		bytes += total;
		niov += 3;
	}
	if (q->tx_n > first)
		send_msgs(q, first, q->tx_n - first);
	q->tx_n = 0;
}

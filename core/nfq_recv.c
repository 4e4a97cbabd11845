// SPDX-License-Identifier: MIT
/*
 * nfq_recv.c - the batched receive (nfq.h): one recvmmsg of up to a batch of
 * netlink messages into the receive slots, each packet message parsed in
 * place into a struct ld_packet whose data points into the slot (zero copy),
 * with every attribute's length checked against the slot's end.
 */
#include "nfq_priv.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* Packets that arrive while we wait for a config reply get the default verdict. */
void ld_nfq_verdict_stray(struct ld_nfq *q, const struct nlmsghdr *nlh)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	q->c->received++;
	if (q->cfg.default_verdict == LD_DROP)
		q->c->dropped++;
	else
		q->c->passed++;
	ld_nfq_verdict(q, ntohl(ph->packet_id), q->cfg.default_verdict, 0, 0, 0, NULL, 0);
}

static uint32_t attr_u32(const struct nlattr *a)
{
	return ntohl(mnl_attr_get_u32(a));
}

static void parse_ct(const struct nlattr *ct, struct ld_packet *p)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, ct) {
		if (mnl_attr_get_type(a) == CTA_MARK &&
		    mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
			p->ct_mark = attr_u32(a);
			p->flags |= LD_PKT_HAS_CT;
		}
	}
}

/* Attribute payload and length, inline: these run ~10 times per packet. */
static inline const uint8_t *attr_data(const struct nlattr *a)
{
	return (const uint8_t *)a + NLA_HDRLEN;
}

static inline uint32_t attr_len(const struct nlattr *a)
{
	return (uint32_t)a->nla_len - NLA_HDRLEN;
}

/* A big-endian u32 attribute's value, or 0 when it is too short to hold one. */
static inline uint32_t attr_u32_checked(const struct nlattr *a)
{
	uint32_t v;

	if (attr_len(a) < sizeof(v))
		return 0;
	memcpy(&v, attr_data(a), sizeof(v));
	return ntohl(v);
}

static void parse_skbinfo(uint32_t skbinfo, struct ld_packet *p)
{
	if (skbinfo & NFQA_SKB_GSO)
		p->flags |= LD_PKT_GSO;
	/* Checksums are not yet valid (e.g. GRO/GSO or a locally generated
	 * packet with offload): the L4 field holds only the pseudo-header
	 * sum; the stack or the NIC finishes it after our verdict. */
	if (skbinfo & NFQA_SKB_CSUMNOTREADY)
		p->flags |= LD_PKT_CSUM_NOTREADY;
}

/*
 * Fill @p from one NFQNL_MSG_PACKET. One inline walk over the attributes
 * with a switch, each bounded by the message: nfq_nlmsg_parse() validates
 * every attribute through a callback (~70 ns per packet in the benchmark's
 * perf profile), and even libmnl's iterator is a few out-of-line calls per
 * attribute (~4% of the daemon's CPU).
 * Return: 0, or -1 when it is unusable (no packet header).
 */
static int parse_packet(struct ld_nfq *q, const struct nlmsghdr *nlh, const uint8_t *slot_end,
			struct ld_packet *p, uint64_t now_ns)
{
	const struct nfqnl_msg_packet_hdr *ph = NULL;
	const struct nlattr *a;
	uint32_t cap_len = 0, room;

	const uint8_t *end = (const uint8_t *)nlh + nlh->nlmsg_len;

	memset(p, 0, sizeof(*p));
	for (a = (const void *)((const uint8_t *)nlh + NLMSG_HDRLEN +
				NLMSG_ALIGN(sizeof(struct nfgenmsg)));
	     (const uint8_t *)a + NLA_HDRLEN <= end && a->nla_len >= NLA_HDRLEN &&
	     (const uint8_t *)a + a->nla_len <= end;
	     a = (const void *)((const uint8_t *)a + NLA_ALIGN(a->nla_len))) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case NFQA_PACKET_HDR:
			if (attr_len(a) >= sizeof(*ph))
				ph = (const void *)attr_data(a);
			break;
		case NFQA_PAYLOAD:
			p->data = (uint8_t *)attr_data(a);
			p->len = attr_len(a);
			break;
		case NFQA_CAP_LEN:
			cap_len = attr_u32_checked(a);
			break;
		case NFQA_MARK:
			p->mark = attr_u32_checked(a);
			break;
		case NFQA_IFINDEX_INDEV:
			p->indev = attr_u32_checked(a);
			break;
		case NFQA_IFINDEX_OUTDEV:
			p->outdev = attr_u32_checked(a);
			break;
		case NFQA_UID:
			p->uid = attr_u32_checked(a);
			p->flags |= LD_PKT_HAS_UID;
			break;
		case NFQA_GID:
			p->gid = attr_u32_checked(a);
			p->flags |= LD_PKT_HAS_GID;
			break;
		case NFQA_CT_INFO:
			p->ct_info = attr_u32_checked(a);
			p->flags |= LD_PKT_HAS_CT;
			break;
		case NFQA_CT:
			parse_ct(a, p);
			break;
		case NFQA_SKB_INFO:
			parse_skbinfo(attr_u32_checked(a), p);
			break;
		default:
			break;
		}
	}
	if (!ph)
		return -1;
	p->id = ntohl(ph->packet_id);
	p->hw_proto = ntohs(ph->hw_protocol);
	p->hook = ph->hook;
	p->tstamp_ns = now_ns;
	p->verdict = q->cfg.default_verdict;
	if (p->data) {
		room = (uint32_t)(slot_end - p->data);
		p->cap = room < LD_PACKET_MAX ? room : LD_PACKET_MAX;
	}
	p->orig_len = p->len;
	if (cap_len > p->len) {
		/* The kernel copied less than the whole packet. */
		p->orig_len = cap_len;
		p->flags |= LD_PKT_TRUNCATED;
	}
	q->last_id = p->id;
	q->seen_any = 1;
	return 0;
}

static void kernel_error(struct ld_nfq *q, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (e->error == 0)
		return;
	q->c->kernel_errors++;
	/* -INT_MIN does not exist: a kernel never sends it, a fuzzer does */
	ld_log_limited(q->lim, "queue %u: kernel refused a message (type %u): %s",
		       q->cfg.queue, e->msg.nlmsg_type,
		       strerror(e->error == INT_MIN ? EINVAL : -e->error));
}

/* The messages of one received datagram into pkts[n..]; returns the new n. */
static int parse_slot(struct ld_nfq *q, const uint8_t *slot, int len, const uint8_t *slot_end,
		      struct ld_packet *pkts, int n, uint64_t now_ns)
{
	for (const struct nlmsghdr *nlh = (const void *)slot; nlmsg_ok(nlh, len);
	     nlh = mnl_nlmsg_next(nlh, &len)) {
		if (nlh->nlmsg_type == NLMSG_ERROR) {
			if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(struct nlmsgerr))
				kernel_error(q, nlh);
			continue;
		}
		if ((nlh->nlmsg_type & 0xff) != NFQNL_MSG_PACKET)
			continue;
		if (n == LD_BATCH_MAX) {
			/* More than one packet per datagram overflowed the batch. */
			ld_nfq_verdict_stray(q, nlh);
			continue;
		}
		if (parse_packet(q, nlh, slot_end, &pkts[n], now_ns) == 0)
			n++;
	}
	return n;
}

int ld_nfq_recv_batch(struct ld_nfq *q, struct ld_packet *pkts, uint64_t now_ns)
{
	int got, n = 0;

	got = recvmmsg(q->fd, q->rx_msgs, LD_BATCH_MAX, MSG_DONTWAIT, NULL);
	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno == ENOBUFS || errno == ENOMEM) {
			/* The kernel dropped messages for us; it counts them too. */
			q->c->recv_errors++;
			ld_log_limited(q->lim, "queue %u: receive: %s (kernel dropped packets)",
				       q->cfg.queue, strerror(errno));
			return 0;
		}
		return -1;
	}
	for (int i = 0; i < got; i++) {
		const uint8_t *slot = q->rx_iov[i].iov_base;

		if (q->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
			q->c->recv_errors++;
			ld_log_limited(q->lim, "queue %u: netlink message truncated", q->cfg.queue);
			continue;
		}
		n = parse_slot(q, slot, (int)q->rx_msgs[i].msg_len, slot + LD_RX_SLOT, pkts, n, now_ns);
	}
	return n;
}

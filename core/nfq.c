// SPDX-License-Identifier: MIT
/*
 * nfq.c - NFQUEUE through libmnl: the socket, its configuration (bind,
 * flags, queue length, buffers) and the end (sweep, unbind). The batched
 * receive is in nfq_recv.c, the batched verdicts in nfq_verdict.c; the three
 * share nfq_priv.h.
 *
 * A verdict message as sent (payload only when the policy changed bytes):
 *
 *   +----------+---------+------------------+-----------+----------+-------------+--------+
 *   | nlmsghdr | nfgenmsg| NFQA_VERDICT_HDR | NFQA_MARK | NFQA_CT  | NFQA_PAYLOAD| data...| pad
 *   |  16 B    |   4 B   | verdict, id      | optional  | optional | attr header | iovec  |
 *   +----------+---------+------------------+-----------+----------+-------------+--------+
 *   '------------------- built in ld_verdict_msg.hdr ---------------------------' '- in the
 *                                                                     receive buffer, not copied
 */
#include "nfq_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

enum {
	CFG_ACK_TIMEOUT_S = 2,          /* a config reply slower than this is an error */
	RCVBUF_PER_PACKET = 2048,       /* socket buffer sized for the queue length */
	RCVBUF_MIN = 4 << 20,
	RCVBUF_MAX = 256 << 20,
	SNDBUF = 8 << 20,               /* room for a batch of grown packets */
	NFQ_COPY_RANGE = 0xffff,
};


static void set_err(char *err, size_t errlen, const char *what, int e)
{
	snprintf(err, errlen, "%s: %s", what, strerror(e));
}



/*
 * Send one config message with NLM_F_ACK and wait for its reply.
 * Return: 0, or the kernel's negative errno.
 */
static int config_request(struct ld_nfq *q, struct nlmsghdr *nlh)
{
	uint8_t buf[LD_RX_SLOT];
	uint32_t seq = ++q->seq;
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = recv(q->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		int len = (int)n;
		for (const struct nlmsghdr *m = (const void *)buf; nlmsg_ok(m, len);
		     m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
				if (m->nlmsg_seq == seq)
					return e->error;
				continue;
			}
			if ((m->nlmsg_type & 0xff) == NFQNL_MSG_PACKET)
				ld_nfq_verdict_stray(q, m);
		}
		ld_nfq_flush(q);
	}
}

static int config_cmd(struct ld_nfq *q, uint8_t cmd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue);

	nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, cmd);
	return config_request(q, nlh);
}

static int config_flags(struct ld_nfq *q, uint32_t flags, uint32_t mask)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue);

	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
	return config_request(q, nlh);
}

static int config_maxlen(struct ld_nfq *q, uint32_t maxlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue);

	nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
	return config_request(q, nlh);
}

static int config_params(struct ld_nfq *q)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue);

	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NFQ_COPY_RANGE);
	return config_request(q, nlh);
}

/* A positive byte count from the environment: 0, or -1 when unset or bad. */
static int env_bytes(const char *name, int *out)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	n = strtol(v, &end, 10);
	if (*end || n <= 0 || n > (1L << 30))
		return -1;
	*out = (int)n;
	return 0;
}

static int socket_setup(struct ld_nfq *q, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = CFG_ACK_TIMEOUT_S };
	uint64_t want = (uint64_t)q->cfg.maxlen * RCVBUF_PER_PACKET;
	int one = 1, rcvbuf, sndbuf = SNDBUF;

	if (want < RCVBUF_MIN)
		want = RCVBUF_MIN;
	if (want > RCVBUF_MAX)
		want = RCVBUF_MAX;
	rcvbuf = (int)want;
	/* FORCE needs CAP_NET_ADMIN, which binding a queue needs anyway. */
	if (setsockopt(q->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 &&
	    setsockopt(q->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) {
		set_err(err, errlen, "SO_RCVBUF", errno);
		return -1;
	}
	/* LUADIVERT_SNDBUF: ask for less, without FORCE: what a container
	 * (no CAP_NET_ADMIN in the initial user namespace) gets. For tests. */
	if (env_bytes("LUADIVERT_SNDBUF", &sndbuf) == 0) {
		if (setsockopt(q->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
			set_err(err, errlen, "SO_SNDBUF", errno);
			return -1;
		}
	} else if (setsockopt(q->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0 &&
		   setsockopt(q->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
		set_err(err, errlen, "SO_SNDBUF", errno);
		return -1;
	}
	if (ld_nfq_learn_sndbuf(q) < 0) {
		set_err(err, errlen, "SO_SNDBUF", errno);
		return -1;
	}
	/* A full socket buffer must not turn into an error on every later read:
	 * the kernel counts what it could not deliver (user_dropped). */
	if (setsockopt(q->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0) {
		set_err(err, errlen, "NETLINK_NO_ENOBUFS", errno);
		return -1;
	}
	/* Config replies only: the event loop reads with MSG_DONTWAIT. */
	if (setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		set_err(err, errlen, "SO_RCVTIMEO", errno);
		return -1;
	}
	return 0;
}

static int buffers_setup(struct ld_nfq *q, uint32_t tx_cap, char *err, size_t errlen)
{
	/* mmap: pages of a slot are only touched as far as packets reach. */
	q->rx = mmap(NULL, (size_t)LD_BATCH_MAX * LD_RX_SLOT, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->rx == MAP_FAILED) {
		q->rx = NULL;
		set_err(err, errlen, "receive buffers", errno);
		return -1;
	}
	for (unsigned i = 0; i < LD_BATCH_MAX; i++) {
		q->rx_iov[i].iov_base = q->rx + (size_t)i * LD_RX_SLOT;
		q->rx_iov[i].iov_len = LD_RX_SLOT;
		memset(&q->rx_msgs[i], 0, sizeof(q->rx_msgs[i]));
		q->rx_msgs[i].msg_hdr.msg_iov = &q->rx_iov[i];
		q->rx_msgs[i].msg_hdr.msg_iovlen = 1;
	}
	q->tx_cap = tx_cap < LD_BATCH_MAX + 1 ? LD_BATCH_MAX + 1 : tx_cap;
	q->tx = calloc(q->tx_cap, sizeof(*q->tx));
	q->tx_iov = calloc((size_t)q->tx_cap * 3, sizeof(*q->tx_iov));
	if (!q->tx || !q->tx_iov) {
		set_err(err, errlen, "verdict buffers", ENOMEM);
		return -1;
	}
	return 0;
}

static void nfq_release(struct ld_nfq *q)
{
	if (q->nl)
		mnl_socket_close(q->nl);
	q->nl = NULL;
	q->fd = -1;
	if (q->rx)
		munmap(q->rx, (size_t)LD_BATCH_MAX * LD_RX_SLOT);
	q->rx = NULL;
	free(q->tx);
	free(q->tx_iov);
	q->tx = NULL;
	q->tx_iov = NULL;
}

int ld_nfq_socket(struct ld_nfq *q, const struct ld_nfq_cfg *cfg, uint32_t tx_cap,
		  struct ld_counters *c, struct ld_log_limit *lim, char *err, size_t errlen)
{
	int e = 0;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->cfg = *cfg;
	q->c = c;
	q->lim = lim;
	q->seq = (uint32_t)time(NULL);
	if (buffers_setup(q, tx_cap, err, errlen) < 0) {
		e = ENOMEM;
		goto fail;
	}
	q->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!q->nl) {
		e = errno;
		set_err(err, errlen, "netlink socket", errno);
		goto fail;
	}
	if (mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		e = errno;
		set_err(err, errlen, "netlink bind", errno);
		goto fail;
	}
	q->fd = mnl_socket_get_fd(q->nl);
	q->portid = mnl_socket_get_portid(q->nl);
	if (socket_setup(q, err, errlen) < 0) {
		e = errno;
		goto fail;
	}
	return 0;
fail:
	nfq_release(q);
	errno = e ? e : EIO;
	return -1;
}

int ld_nfq_bind(struct ld_nfq *q, char *err, size_t errlen)
{
	const struct ld_nfq_cfg *cfg = &q->cfg;
	uint32_t flags;
	int rc, e = 0;

	rc = config_cmd(q, NFQNL_CFG_CMD_BIND);
	if (rc == -EPERM) {
		/* The kernel says EPERM both when we lack CAP_NET_ADMIN and when
		 * another socket owns the queue; the proc file tells which. */
		struct ld_kernel_counters k;

		if (ld_kernel_counters_read(cfg->queue, &k) == 0 && k.valid)
			rc = -EBUSY;
	}
	e = -rc;
	if (rc == -EBUSY) {
		snprintf(err, errlen, "queue %u is already bound by another process "
			 "(see /proc/net/netfilter/nfnetlink_queue)", cfg->queue);
		goto fail;
	}
	if (rc == -EPERM) {
		snprintf(err, errlen, "binding queue %u: %s (run as root or with CAP_NET_ADMIN)",
			 cfg->queue, strerror(-rc));
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "binding queue %u: %s", cfg->queue, strerror(-rc));
		goto fail;
	}
	rc = config_params(q);
	if (rc == 0)
		rc = config_maxlen(q, cfg->maxlen);
	e = -rc;
	if (rc < 0) {
		snprintf(err, errlen, "configuring queue %u: %s", cfg->queue, strerror(-rc));
		goto fail_unbind;
	}
	flags = (cfg->whole_packets ? 0 :
		 NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID | NFQA_CFG_F_CONNTRACK) |
		(cfg->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
	rc = config_flags(q, flags, flags | NFQA_CFG_F_FAIL_OPEN);
	if (rc == -EOPNOTSUPP) {
		/* Kernels without the conntrack glue refuse CONNTRACK: go on without. */
		flags &= ~(uint32_t)NFQA_CFG_F_CONNTRACK;
		rc = config_flags(q, flags, flags | NFQA_CFG_F_FAIL_OPEN);
		if (rc == 0)
			ld_log("queue %u: this kernel gives queues no conntrack information "
			       "(CONFIG_NETFILTER_NETLINK_GLUE_CT): pkt:ct_mark() and pkt:ct_info() "
			       "return nil and pkt:set_ct_mark() has no effect; everything else "
			       "works", cfg->queue);
	}
	if (rc < 0) {
		e = -rc;
		snprintf(err, errlen, "setting flags on queue %u: %s", cfg->queue, strerror(-rc));
		goto fail_unbind;
	}
	q->bound = 1;
	return 0;

fail_unbind:
	config_cmd(q, NFQNL_CFG_CMD_UNBIND);
fail:
	errno = e ? e : EIO;
	return -1;
}

int ld_nfq_open(struct ld_nfq *q, const struct ld_nfq_cfg *cfg, uint32_t tx_cap,
		struct ld_counters *c, struct ld_log_limit *lim, char *err, size_t errlen)
{
	if (ld_nfq_socket(q, cfg, tx_cap, c, lim, err, errlen) < 0)
		return -1;
	if (ld_nfq_bind(q, err, errlen) < 0) {
		nfq_release(q);
		return -1;
	}
	return 0;
}

int ld_nfq_learn_sndbuf(struct ld_nfq *q)
{
	int have = 0;
	socklen_t len = sizeof(have);

	if (getsockopt(q->fd, SOL_SOCKET, SO_SNDBUF, &have, &len) < 0)
		return -1;
	/* netlink_sendmsg() refuses anything above sk_sndbuf - 32 */
	q->send_max = have > LD_SEND_SLACK ? (uint32_t)(have - LD_SEND_SLACK) : 1;
	if (q->send_max > LD_SEND_BYTES_MAX)
		q->send_max = LD_SEND_BYTES_MAX;
	return 0;
}

uint32_t ld_nfq_sweep_id(uint32_t last_id, uint32_t maxlen)
{
	/*
	 * The kernel (nfqnl_recv_verdict_batch) walks its queue oldest first
	 * and stops at the first id "after" max_id in serial arithmetic,
	 * (int32_t)(id - max_id) > 0: one batch verdict covers the 2^31 ids up
	 * to max_id. Every packet still queued was queued before the queue
	 * length went to 0, and the ones newer than the newest we read
	 * (last_id) are all still queued: at most maxlen of them. So max_id =
	 * last_id + maxlen reaches the newest, and the window still covers
	 * 2^31 - maxlen ids older than last_id (packets we read but whose
	 * verdict never came through, or lost messages in between).
	 */
	return last_id + maxlen;
}

uint64_t ld_nfq_close(struct ld_nfq *q, uint32_t sweep_verdict)
{
	struct ld_packet pkts[LD_BATCH_MAX];
	uint64_t drained = 0;
	int n, rc;

	if (!q->nl)
		return 0;
	if (!q->bound) {
		nfq_release(q);
		return 0;
	}
	/*
	 * From now on the kernel decides for new packets itself: a full queue
	 * accepts them with fail-open (or drops them). Fail-open first, in a
	 * message of its own: the kernel applies the two settings under
	 * separate locks, and a packet arriving between "length 0" and
	 * "fail-open" would be dropped.
	 */
	rc = config_flags(q, sweep_verdict == LD_DROP ? 0 : NFQA_CFG_F_FAIL_OPEN,
			  NFQA_CFG_F_FAIL_OPEN);
	if (rc == 0)
		rc = config_maxlen(q, 0);
	if (rc < 0)
		ld_log("queue %u: closing: %s", q->cfg.queue, strerror(-rc));
	q->cfg.default_verdict = sweep_verdict;
	while ((n = ld_nfq_recv_batch(q, pkts, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			ld_nfq_verdict(q, pkts[i].id, sweep_verdict, 0, 0, 0, NULL, 0);
			if (sweep_verdict == LD_DROP)
				q->c->dropped++;
			else
				q->c->passed++;
		}
		q->c->received += (uint64_t)n;
		drained += (uint64_t)n;
		ld_nfq_flush(q);
	}
	/* Anything still queued whose message we never read (lost to a full
	 * socket buffer) gets the verdict too: ids are serial numbers. */
	ld_nfq_verdict_batch(q, ld_nfq_sweep_id(q->last_id, q->cfg.maxlen), sweep_verdict);
	ld_nfq_flush(q);
	rc = config_cmd(q, NFQNL_CFG_CMD_UNBIND);
	if (rc < 0)
		ld_log("queue %u: unbind: %s", q->cfg.queue, strerror(-rc));
	nfq_release(q);
	return drained;
}

void ld_nfq_detach(struct ld_nfq *q)
{
	if (!q->nl)
		return;
	ld_nfq_flush(q);
	nfq_release(q);
}

/* SPDX-License-Identifier: MIT */
/*
 * inject.c - duplicates and other new packets leave through raw sockets
 * carrying the skip mark (see inject.h for the path they take).
 */
#include "inject.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rules.h"

_Static_assert((uint32_t)LD_INJECT_MARK_DEFAULT == (uint32_t)LD_RULES_SKIP_MARK_DEFAULT,
	       "injected packets must carry the mark the divert rules skip");

enum {
	INJ_IPV4_HDR_MIN = 20,
	INJ_IPV6_HDR_LEN = 40,
	INJ_IPV4_DST_OFF = 16,    /* destination address in the IPv4 header */
	INJ_IPV6_DST_OFF = 24,    /* destination address in the IPv6 header */
	INJ_SNDBUF = 4 << 20,     /* send buffer of the raw sockets */
	INJ_CTL_SPACE = 64,       /* control buffer: one IP(V6)_PKTINFO message */
};

static int raw_socket(int family, uint32_t mark, char *err, size_t errlen)
{
	int one = 1, sndbuf = INJ_SNDBUF;
	int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";

	if (fd < 0) {
		snprintf(err, errlen, "raw %s socket: %s%s", fam, strerror(errno),
			 errno == EPERM ? " (needs CAP_NET_RAW)" : "");
		return -1;
	}
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		snprintf(err, errlen, "SO_MARK 0x%x on the raw %s socket: %s%s", (unsigned)mark,
			 fam, strerror(errno), errno == EPERM ? " (needs CAP_NET_ADMIN)" : "");
		close(fd);
		return -1;
	}
	/*
	 * Held packets taken over from the kernel leave in bursts at release
	 * time; the default send buffer (~200 KiB) would drop some of a burst.
	 * Best effort: without CAP_NET_ADMIN the default stays.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* Copies of broadcasts must be allowed out like the originals. */
	if (family == AF_INET && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0) {
		snprintf(err, errlen, "SO_BROADCAST on the raw IPv4 socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int ld_inject_open(struct ld_inject *inj, uint32_t mark, char *err, size_t errlen)
{
	char err6[256];

	memset(inj, 0, sizeof(*inj));
	inj->fd4 = inj->fd6 = -1;
	inj->mark = mark;
	inj->fd4 = raw_socket(AF_INET, mark, err, errlen);
	if (inj->fd4 < 0)
		return -1;
	inj->fd6 = raw_socket(AF_INET6, mark, err6, sizeof(err6));
	if (inj->fd6 < 0 && errno != EAFNOSUPPORT) {
		/* IPv6 exists but we may not use it: that is a real problem. */
		snprintf(err, errlen, "%s", err6);
		close(inj->fd4);
		inj->fd4 = -1;
		return -1;
	}
	return 0;
}

static uint32_t inj_be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static void count_failure(struct ld_inject *inj, int e)
{
	inj->failed++;
	inj->last_errno = e;
	if (e == EMSGSIZE)
		inj->too_big++;
	else if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)
		inj->no_buffer++;
}

static int invalid(struct ld_inject *inj)
{
	inj->invalid++;
	inj->last_errno = EINVAL;
	errno = EINVAL;
	return -1;
}

/* Attach one IP_PKTINFO / IPV6_PKTINFO control message to @msg. */
static void put_pktinfo(struct msghdr *msg, void *buf, size_t bufsize, int level, int type,
			const void *info, size_t infolen)
{
	struct cmsghdr *cm = (struct cmsghdr *)buf;

	memset(buf, 0, bufsize);
	cm->cmsg_level = level;
	cm->cmsg_type = type;
	cm->cmsg_len = CMSG_LEN(infolen);
	memcpy(CMSG_DATA(cm), info, infolen);
	msg->msg_control = buf;
	msg->msg_controllen = CMSG_SPACE(infolen);
}

/* Link-local and multicast IPv6 destinations need an interface (scope). */
static int v6_needs_scope(const struct in6_addr *a)
{
	return IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_MULTICAST(a);
}

/* One message ready for sendmsg: where to, which interface, which bytes. */
struct inj_msg {
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} dst;
	union {
		char buf[INJ_CTL_SPACE];   /* >= CMSG_SPACE(sizeof(struct in6_pktinfo)) */
		size_t align;              /* as struct cmsghdr (which ends in a flexible array) */
	} ctl;
	struct iovec iov;
	int fd;
};

/* Check @pkt and fill @m and @msg; -1 (counted, errno EINVAL) when it cannot be sent. */
static int prepare(struct ld_inject *inj, const uint8_t *pkt, uint32_t len, uint32_t ifindex,
		   struct inj_msg *m, struct msghdr *msg)
{
	uint32_t total;

	if (!pkt || len < INJ_IPV4_HDR_MIN)
		return invalid(inj);
	memset(&m->dst, 0, sizeof(m->dst));
	memset(msg, 0, sizeof(*msg));
	switch (pkt[0] >> 4) {
	case 4: {
		uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4;

		total = inj_be16(pkt + 2);
		if (ihl < INJ_IPV4_HDR_MIN || total < ihl || total > len)
			return invalid(inj);
		m->fd = inj->fd4;
		m->dst.v4.sin_family = AF_INET;
		memcpy(&m->dst.v4.sin_addr, pkt + INJ_IPV4_DST_OFF, sizeof(m->dst.v4.sin_addr));
		msg->msg_namelen = sizeof(m->dst.v4);
		if (ifindex) {
			struct in_pktinfo pi = { .ipi_ifindex = (int)ifindex };

			put_pktinfo(msg, m->ctl.buf, sizeof(m->ctl), IPPROTO_IP, IP_PKTINFO, &pi,
				    sizeof(pi));
		}
		break;
	}
	case 6:
		if (len < INJ_IPV6_HDR_LEN)
			return invalid(inj);
		/* A zero payload length means a jumbogram: send what we have. */
		total = inj_be16(pkt + 4) ? INJ_IPV6_HDR_LEN + inj_be16(pkt + 4) : len;
		if (total > len)
			return invalid(inj);
		m->fd = inj->fd6;
		m->dst.v6.sin6_family = AF_INET6;
		memcpy(&m->dst.v6.sin6_addr, pkt + INJ_IPV6_DST_OFF, sizeof(m->dst.v6.sin6_addr));
		if (ifindex && v6_needs_scope(&m->dst.v6.sin6_addr))
			m->dst.v6.sin6_scope_id = ifindex;
		msg->msg_namelen = sizeof(m->dst.v6);
		if (ifindex) {
			struct in6_pktinfo pi = { .ipi6_ifindex = ifindex };

			put_pktinfo(msg, m->ctl.buf, sizeof(m->ctl), IPPROTO_IPV6, IPV6_PKTINFO, &pi,
				    sizeof(pi));
		}
		break;
	default:
		return invalid(inj);
	}
	if (m->fd < 0)
		return invalid(inj);
	m->iov.iov_base = (void *)(uintptr_t)pkt;  /* sendmsg does not write it */
	m->iov.iov_len = total;
	msg->msg_name = &m->dst;
	msg->msg_iov = &m->iov;
	msg->msg_iovlen = 1;
	return 0;
}

int ld_inject_send_dev(struct ld_inject *inj, const uint8_t *pkt, uint32_t len,
		       uint32_t ifindex)
{
	struct inj_msg m;
	struct msghdr msg;

	if (prepare(inj, pkt, len, ifindex, &m, &msg) < 0)
		return -1;
	for (;;) {
		ssize_t n = sendmsg(m.fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0) {
			inj->sent++;
			return 0;
		}
		if (errno != EINTR)
			break;
	}
	count_failure(inj, errno);
	return -1;
}

/* Send mm[from..to) on @fd; a refused message is counted and skipped. */
static uint32_t send_range(struct ld_inject *inj, int fd, struct mmsghdr *mm, uint32_t from,
			   uint32_t to)
{
	uint32_t sent = 0, i = from;

	while (i < to) {
		int r = sendmmsg(fd, mm + i, to - i, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			i += (uint32_t)r;
			sent += (uint32_t)r;
			inj->sent += (uint64_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else {
			/* the first unsent message failed: count it, go on with the next */
			count_failure(inj, r < 0 ? errno : EIO);
			i++;
		}
	}
	return sent;
}

uint32_t ld_inject_send_tagged(struct ld_inject *inj, const uint8_t *const *pkts,
			       const uint32_t *lens, const uint32_t *tags, uint32_t n,
			       uint32_t ifindex)
{
	struct inj_msg m[LD_INJECT_BATCH];
	struct msghdr hdr[LD_INJECT_BATCH];
	uint32_t tag[LD_INJECT_BATCH];
	struct mmsghdr own[LD_INJECT_BATCH];
	struct ld_inject_log *log = tags ? inj->log : NULL;
	struct mmsghdr *mm = log ? log->mm : own;
	uint32_t sent, k = 0, at = 0, v6_from = 0;

	if (n > LD_INJECT_BATCH)
		n = LD_INJECT_BATCH;
	/* Refused packets are counted by prepare() and left out. */
	for (uint32_t j = 0; j < n; j++) {
		if (prepare(inj, pkts[j], lens[j], ifindex, &m[k], &hdr[k]) < 0)
			continue;
		tag[k++] = tags ? tags[j] : LD_INJECT_NO_TAG;
	}
	/*
	 * One sendmmsg per family, IPv4 first. The headers point into m[],
	 * which does not move. Writing each entry (msg_len = 0 included)
	 * here also makes its page present, so the kernel's msg_len store
	 * after a send does not fault and cannot fail for a pending SIGKILL
	 * (unless the page were swapped out within these microseconds:
	 * docs/process.md says what that would cost).
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t j = 0; j < k; j++) {
			if ((m[j].fd == inj->fd4) != (pass == 0))
				continue;
			mm[at].msg_hdr = hdr[j];
			mm[at].msg_len = 0;
			if (log)
				log->tag[at] = tag[j];
			at++;
		}
		if (pass == 0)
			v6_from = at;
	}
	if (log)
		__atomic_store_n(&log->n, k, __ATOMIC_RELEASE);   /* before the first send */
	sent = send_range(inj, inj->fd4, mm, 0, v6_from) + send_range(inj, inj->fd6, mm, v6_from, k);
	if (log) {
		if (inj->settle)
			inj->settle(inj->settle_ctx, log);
		__atomic_store_n(&log->n, 0, __ATOMIC_RELEASE);
	}
	return sent;
}

uint32_t ld_inject_send_many(struct ld_inject *inj, const uint8_t *const *pkts,
			     const uint32_t *lens, uint32_t n, uint32_t ifindex)
{
	return ld_inject_send_tagged(inj, pkts, lens, NULL, n, ifindex);
}

int ld_inject_send(struct ld_inject *inj, const uint8_t *pkt, uint32_t len)
{
	return ld_inject_send_dev(inj, pkt, len, 0);
}

void ld_inject_close(struct ld_inject *inj)
{
	if (inj->fd4 >= 0)
		close(inj->fd4);
	if (inj->fd6 >= 0)
		close(inj->fd6);
	inj->fd4 = inj->fd6 = -1;
}

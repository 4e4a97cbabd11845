// SPDX-License-Identifier: MIT
/*
 * divert_sock.c - one divert socket: bind a queue, hand packets to read
 * calls one at a time from batches, turn writes into verdicts or new
 * packets, drop what is never written back (divert_int.h draws the path).
 */
#include "divert_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
	IP4_HDR_MIN = 20,
	IP6_HDR_LEN = 40,
	TX_CAP      = 4 * LD_BATCH_MAX,    /* verdicts queued before nfq sends on its own */
	NS_PER_MS   = 1000 * 1000,
};

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

/*
 * The bytes of one IP packet at @p: 0 with *total = its length (IPv4 total
 * length, IPv6 40 + payload length), or -1 when it is not a whole IPv4 or
 * IPv6 packet.
 */
static int ip_total(const uint8_t *p, size_t len, uint32_t *total)
{
	if (len < IP4_HDR_MIN)
		return -1;
	if (p[0] >> 4 == 4) {
		uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;

		*total = be16(p + 2);
		return ihl < IP4_HDR_MIN || *total < ihl || *total > len ? -1 : 0;
	}
	if (p[0] >> 4 == 6 && len >= IP6_HDR_LEN) {
		*total = IP6_HDR_LEN + be16(p + 4);
		return *total > len ? -1 : 0;
	}
	return -1;
}

/*
 * What identifies a packet across the rewrites a divert program makes (NAT
 * changes one address and a port, and the checksums): version, protocol,
 * the IPv4 id or IPv6 flow label, and both addresses, of which one must
 * still be equal (see key_match).
 */
static void key_fill(struct ld_divert_pending *k, const uint8_t *p, uint32_t len)
{
	memset(k, 0, sizeof(*k));
	if (len >= IP4_HDR_MIN && p[0] >> 4 == 4) {
		k->version = 4;
		k->proto = p[9];
		k->ident = be16(p + 4);
		memcpy(k->src, p + 12, 4);
		memcpy(k->dst, p + 16, 4);
	} else if (len >= IP6_HDR_LEN && p[0] >> 4 == 6) {
		k->version = 6;
		k->proto = p[6];
		k->ident = ((uint32_t)(p[1] & 0x0f) << 16) | be16(p + 2);
		memcpy(k->src, p + 8, 16);
		memcpy(k->dst, p + 24, 16);
	}
}

/* A reply built from a packet swaps the addresses, so it never matches. */
static int key_match(const struct ld_divert_pending *a, const struct ld_divert_pending *b)
{
	size_t alen = a->version == 4 ? 4 : 16;

	return a->version && a->version == b->version && a->proto == b->proto &&
	       a->ident == b->ident &&
	       (!memcmp(a->src, b->src, alen) || !memcmp(a->dst, b->dst, alen));
}

static void set_signal(struct ld_divert_sock *s)
{
	int want = s->cur < s->n;
	uint64_t v = 1;

	if (want == s->signaled)
		return;
	/* The eventfd is non-blocking and only ever holds 0 or 1: neither
	 * call can fail except by a bug, which the next read would show. */
	if (want)
		(void)!ld_divert_real.write(s->evfd, &v, sizeof(v));
	else
		(void)!ld_divert_real.read(s->evfd, &v, sizeof(v));
	s->signaled = want;
}

struct ld_divert_sock *ld_divert_sock_new(int type, int *err)
{
	struct ld_divert_sock *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN };
	const char *t = getenv("LUADIVERT_DIVERT_TIMEOUT_MS");
	long ms = t && *t ? strtol(t, NULL, 10) : LD_DIVERT_UNWRITTEN_MS;

	if (!s) {
		*err = ENOBUFS;
		return NULL;
	}
	s->evfd = s->fd = -1;
	s->q.fd = -1;
	s->inj.fd4 = s->inj.fd6 = -1;
	s->timeout_ns = (uint64_t)(ms > 0 ? ms : LD_DIVERT_UNWRITTEN_MS) * NS_PER_MS;
	s->ring = calloc(LD_DIVERT_PENDING_MAX, sizeof(*s->ring));
	s->fd = epoll_create1(type & SOCK_CLOEXEC ? EPOLL_CLOEXEC : 0);
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!s->ring || s->fd < 0 || s->evfd < 0 ||
	    epoll_ctl(s->fd, EPOLL_CTL_ADD, s->evfd, &ev) < 0 ||
	    ((type & SOCK_NONBLOCK) && fcntl(s->fd, F_SETFL, O_NONBLOCK) < 0)) {
		*err = errno ? errno : ENOBUFS;
		if (s->fd >= 0)
			ld_divert_real.close(s->fd);
		if (s->evfd >= 0)
			ld_divert_real.close(s->evfd);
		free(s->ring);
		free(s);
		return NULL;
	}
	return s;
}

static int apply_buf(struct ld_divert_sock *s, int name, int val)
{
	int force = name == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;

	/* The program asked for this size: FORCE lets root pass rmem_max, as
	 * FreeBSD's limit is its own sysctl. */
	if (ld_divert_real.setsockopt(s->q.fd, SOL_SOCKET, force, &val, sizeof(val)) == 0)
		return 0;
	return ld_divert_real.setsockopt(s->q.fd, SOL_SOCKET, name, &val, sizeof(val));
}

int ld_divert_sock_bind(struct ld_divert_sock *s, const struct sockaddr *sa, socklen_t len)
{
	struct ld_nfq_cfg cfg = {
		.maxlen = LD_DIVERT_QUEUE_MAXLEN,
		/* packets that arrive while the queue is being configured */
		.default_verdict = LD_PASS,
		.whole_packets = 1,
	};
	struct epoll_event ev = { .events = EPOLLIN };
	struct sockaddr_in sin;
	char msg[256];

	if (!sa || len < (socklen_t)sizeof(sin)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(&sin, sa, sizeof(sin));
	if (sin.sin_family != AF_INET && sin.sin_family != AF_UNSPEC) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (s->bound) {
		errno = EINVAL;    /* as for any socket bound twice */
		return -1;
	}
	cfg.queue = ntohs(sin.sin_port);
	{
		const char *m = getenv("LUADIVERT_DIVERT_QUEUE_MAXLEN");
		long v = m && *m ? strtol(m, NULL, 10) : 0;

		if (v > 0 && v <= LD_DIVERT_QUEUE_MAXLEN_MAX)
			cfg.maxlen = (uint32_t)v;
	}
	if (ld_nfq_open(&s->q, &cfg, TX_CAP, &s->c, &s->lim, msg, sizeof(msg)) < 0) {
		/* FreeBSD: a divert port in use is EADDRINUSE. */
		if (errno == EBUSY)
			errno = EADDRINUSE;
		return -1;
	}
	s->arena = mmap(NULL, LD_DIVERT_ARENA, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->arena == MAP_FAILED || epoll_ctl(s->fd, EPOLL_CTL_ADD, s->q.fd, &ev) < 0 ||
	    (s->rcvbuf && apply_buf(s, SO_RCVBUF, s->rcvbuf) < 0) ||
	    (s->sndbuf && apply_buf(s, SO_SNDBUF, s->sndbuf) < 0)) {
		int e = errno;

		if (s->arena != MAP_FAILED)
			munmap(s->arena, LD_DIVERT_ARENA);
		s->arena = NULL;
		ld_nfq_close(&s->q, LD_PASS);
		errno = e;
		return -1;
	}
	s->port = cfg.queue;
	s->bound = 1;
	return 0;
}

/* Queue the run of unchanged write-backs: one batch verdict when safe. */
static void accept_run_out(struct ld_divert_sock *s)
{
	int older_waiting = s->forked;

	if (!s->acc_n)
		return;
	for (uint32_t i = 0; i < s->count && !older_waiting; i++) {
		const struct ld_divert_pending *e = &s->ring[(s->head + i) % LD_DIVERT_PENDING_MAX];

		older_waiting = !e->done && (int32_t)(e->id - s->acc_hi) < 0;
	}
	if (!older_waiting) {
		ld_nfq_verdict_batch(&s->q, s->acc_hi, LD_PASS);
	} else {
		for (uint32_t id = s->acc_lo; id != s->acc_hi + 1; id++)
			ld_nfq_verdict(&s->q, id, LD_PASS, 0, 0, 0, NULL, 0);
	}
	s->acc_n = 0;
}

void ld_divert_sock_flush(struct ld_divert_sock *s)
{
	accept_run_out(s);
	if (s->q.tx_n)
		ld_nfq_flush(&s->q);
	s->arena_used = 0;
}

/* A plain accept: part of the current run, or the start of a new one. */
static void accept_plain(struct ld_divert_sock *s, uint32_t id)
{
	if (s->acc_n && id != s->acc_hi + 1)
		accept_run_out(s);
	if (!s->acc_n)
		s->acc_lo = id;
	s->acc_hi = id;
	s->acc_n++;
}

static void pop_head(struct ld_divert_sock *s)
{
	s->head = (s->head + 1) % LD_DIVERT_PENDING_MAX;
	s->count--;
}

/* Drop the oldest pending packet if it was never written back. */
static void drop_head(struct ld_divert_sock *s)
{
	struct ld_divert_pending *e = &s->ring[s->head];

	if (!e->done) {
		ld_nfq_verdict(&s->q, e->id, LD_DROP, 0, 0, 0, NULL, 0);
		s->st.unwritten++;
	}
	pop_head(s);
}

/* Unwritten packets older than the time limit are gone now. */
static void expire(struct ld_divert_sock *s, uint64_t now)
{
	while (s->count) {
		struct ld_divert_pending *e = &s->ring[s->head];

		if (!e->done && now - e->read_ns < s->timeout_ns)
			break;
		drop_head(s);
	}
}

static void pending_add(struct ld_divert_sock *s, const struct ld_packet *p)
{
	struct ld_divert_pending *e;

	if (s->count == LD_DIVERT_PENDING_MAX)
		drop_head(s);
	e = &s->ring[(s->head + s->count) % LD_DIVERT_PENDING_MAX];
	key_fill(e, p->data, p->len);
	e->id = p->id;
	e->read_ns = p->tstamp_ns;
	e->gen = s->gen;
	e->data = p->data;
	e->len = p->len;
	s->count++;
}

/* The sockaddr_in of divert(4): where the packet was diverted. */
static void fill_from(struct ld_divert_sock *s, const struct ld_packet *p,
		      struct sockaddr *from, socklen_t *fromlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(s->port) };
	/* prerouting, input, forward: the packet came in on indev */
	int inbound = p->hook <= 2;
	uint32_t ifindex = inbound ? p->indev : p->outdev;

	/* The receive time of the batch is "now" here: no clock read per packet. */
	if (ifindex != s->if_index || p->tstamp_ns - s->if_when_ns > LD_IFINFO_TTL_NS) {
		ld_divert_ifinfo(ifindex, s->if_name, &s->if_addr);
		s->if_index = ifindex;
		s->if_when_ns = p->tstamp_ns;
	}
	memcpy(sin.sin_zero, s->if_name, sizeof(sin.sin_zero));
	sin.sin_addr.s_addr = inbound ? s->if_addr.s_addr : INADDR_ANY;
	memcpy(from, &sin, *fromlen < sizeof(sin) ? *fromlen : sizeof(sin));
	*fromlen = sizeof(sin);
}

static int would_block(const struct ld_divert_sock *s, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return 1;
	fl = fcntl(s->fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/* Make pkts[cur..n) non-empty, waiting unless non-blocking. Return 0 or -1. */
static int fill_batch(struct ld_divert_sock *s, int flags)
{
	struct pollfd pfd = { .fd = s->q.fd, .events = POLLIN };
	int got;

	for (;;) {
		uint64_t now = ld_now_ns();

		expire(s, now);
		ld_divert_sock_flush(s);
		got = ld_nfq_recv_batch(&s->q, s->pkts, now);
		if (got < 0)
			return -1;
		if (got > 0) {
			s->n = (uint32_t)got;
			s->cur = 0;
			s->gen++;
			return 0;
		}
		if (would_block(s, flags)) {
			errno = EAGAIN;
			return -1;
		}
		if (poll(&pfd, 1, -1) < 0)
			return -1;    /* EINTR: a signal, as a socket read reports it */
	}
}

ssize_t ld_divert_sock_recv(struct ld_divert_sock *s, void *buf, size_t len, int flags,
			    struct sockaddr *from, socklen_t *fromlen, int *msg_flags)
{
	const struct ld_packet *p;
	size_t copy;

	if (!s->bound) {
		errno = ENOTCONN;
		return -1;
	}
	if (s->cur >= s->n && fill_batch(s, flags) < 0)
		return -1;
	p = &s->pkts[s->cur];
	copy = p->len < len ? p->len : len;
	memcpy(buf, p->data, copy);
	if (copy < p->len && msg_flags)
		*msg_flags |= MSG_TRUNC;
	if (from && fromlen)
		fill_from(s, p, from, fromlen);
	if (flags & MSG_PEEK)
		return (ssize_t)((flags & MSG_TRUNC) ? p->len : copy);
	if (copy < p->len)
		s->st.truncated++;
	s->st.read++;
	pending_add(s, p);
	s->cur++;
	set_signal(s);
	return (ssize_t)((flags & MSG_TRUNC) ? p->len : copy);
}

/* The newest pending packet this write is a version of, or NULL. */
static struct ld_divert_pending *find_pending(struct ld_divert_sock *s,
					      const struct ld_divert_pending *k)
{
	for (uint32_t i = s->count; i-- > 0;) {
		struct ld_divert_pending *e = &s->ring[(s->head + i) % LD_DIVERT_PENDING_MAX];

		if (!e->done && key_match(e, k))
			return e;
	}
	return NULL;
}

static void write_back(struct ld_divert_sock *s, struct ld_divert_pending *e,
		       const uint8_t *pkt, uint32_t total)
{
	uint8_t *copy;

	e->done = 1;
	s->st.written_back++;
	/* Still in the current receive batch and unchanged: a plain accept. */
	if (e->gen == s->gen && e->len == total && !memcmp(e->data, pkt, total)) {
		accept_plain(s, e->id);
		return;
	}
	if (s->arena_used + total > LD_DIVERT_ARENA)
		ld_divert_sock_flush(s);
	copy = s->arena + s->arena_used;
	memcpy(copy, pkt, total);
	s->arena_used += (total + 7) & ~(size_t)7;
	s->st.modified++;
	ld_nfq_verdict(&s->q, e->id, LD_PASS, LD_SET_MODIFIED, 0, 0, copy, total);
}

static ssize_t inject_new(struct ld_divert_sock *s, const uint8_t *pkt, uint32_t total)
{
	char msg[256];

	if (!s->inj_open) {
		if (ld_inject_open(&s->inj, LD_INJECT_MARK_DEFAULT, msg, sizeof(msg)) < 0)
			return -1;
		s->inj_open = 1;
	}
	/*
	 * Outbound (INADDR_ANY) and inbound alike are routed by destination:
	 * Linux has no "receive this on eth0" for a raw socket, so an inbound
	 * packet for a local address arrives through loopback (divert.4).
	 */
	if (ld_inject_send(&s->inj, pkt, total) < 0) {
		s->st.inject_errors++;
		return -1;
	}
	s->st.injected++;
	return 0;
}

ssize_t ld_divert_sock_send(struct ld_divert_sock *s, const void *buf, size_t len,
			    const struct sockaddr *to, socklen_t tolen)
{
	struct ld_divert_pending k, *e;
	uint32_t total;

	(void)tolen;
	(void)to;    /* a packet read goes on where it was; see inject_new for new ones */
	if (len > LD_PACKET_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (!buf || ip_total(buf, len, &total) < 0) {
		s->st.invalid_writes++;
		errno = EINVAL;
		return -1;
	}
	key_fill(&k, buf, total);
	e = s->bound ? find_pending(s, &k) : NULL;
	if (e) {
		write_back(s, e, buf, total);
		/* Nothing more to hand out without a system call: send now, the
		 * program may sleep in poll next. */
		if (s->cur >= s->n)
			ld_divert_sock_flush(s);
		return (ssize_t)len;
	}
	if (inject_new(s, buf, total) < 0)
		return -1;
	return (ssize_t)len;
}

int ld_divert_sock_setsockopt(struct ld_divert_sock *s, int level, int name,
			      const void *val, socklen_t len)
{
	int v;

	if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF) &&
	    val && len >= (socklen_t)sizeof(int)) {
		memcpy(&v, val, sizeof(v));
		if (!s->bound) {
			/* applied at bind, when the queue's socket exists */
			*(name == SO_RCVBUF ? &s->rcvbuf : &s->sndbuf) = v;
			return 0;
		}
		return apply_buf(s, name, v);
	}
	if (!s->bound) {
		errno = ENOPROTOOPT;
		return -1;
	}
	return ld_divert_real.setsockopt(s->q.fd, level, name, val, len);
}

int ld_divert_sock_getsockopt(struct ld_divert_sock *s, int level, int name,
			      void *val, socklen_t *len)
{
	int v;

	if (level == SOL_SOCKET && (name == SO_TYPE || name == SO_PROTOCOL ||
				    name == SO_DOMAIN)) {
		v = name == SO_TYPE ? SOCK_RAW : name == SO_PROTOCOL ? IPPROTO_DIVERT : AF_INET;
	} else if (s->bound) {
		return ld_divert_real.getsockopt(s->q.fd, level, name, val, len);
	} else if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF)) {
		v = 2 * (name == SO_RCVBUF ? s->rcvbuf : s->sndbuf);  /* Linux doubles it */
	} else {
		errno = ENOPROTOOPT;
		return -1;
	}
	if (!val || !len || *len < (socklen_t)sizeof(v)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(val, &v, sizeof(v));
	*len = sizeof(v);
	return 0;
}

/* LUADIVERT_DIVERT_STATS=1: the counters on stderr at close, for people and tests. */
static void print_stats(const struct ld_divert_sock *s)
{
	const struct ld_divert_stats *t = &s->st;
	const char *e = getenv("LUADIVERT_DIVERT_STATS");

	if (!s->bound || !e || !*e || !strcmp(e, "0"))
		return;
	fprintf(stderr, "luadivert: divert port %u: read %llu written_back %llu modified %llu "
		"injected %llu inject_errors %llu unwritten %llu truncated %llu invalid_writes %llu\n",
		(unsigned)s->port, (unsigned long long)t->read, (unsigned long long)t->written_back,
		(unsigned long long)t->modified, (unsigned long long)t->injected,
		(unsigned long long)t->inject_errors, (unsigned long long)t->unwritten,
		(unsigned long long)t->truncated, (unsigned long long)t->invalid_writes);
}

void ld_divert_sock_close(struct ld_divert_sock *s)
{
	if (s->bound) {
		/* Gone at close, as on FreeBSD: what was read and not written
		 * back, and what was read from the kernel but not handed out. */
		while (s->count)
			drop_head(s);
		for (; s->cur < s->n; s->cur++) {
			ld_nfq_verdict(&s->q, s->pkts[s->cur].id, LD_DROP, 0, 0, 0, NULL, 0);
			s->st.unwritten++;
		}
		ld_divert_sock_flush(s);
		/* The kernel unbinds the queue when the last process holding
		 * the socket closes it (fork). */
		ld_nfq_detach(&s->q);
		munmap(s->arena, LD_DIVERT_ARENA);
	}
	print_stats(s);
	if (s->inj_open)
		ld_inject_close(&s->inj);
	ld_divert_real.close(s->evfd);
	free(s->ring);
	free(s);
}

void ld_divert_sock_after_fork(struct ld_divert_sock *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fdfl = fcntl(s->fd, F_GETFD), fl = fcntl(s->fd, F_GETFL);
	int ep, evfd;

	/* The packets in hand belong to the parent, which verdicts them. */
	s->n = s->cur = 0;
	s->acc_n = 0;
	s->forked = 1;
	s->head = s->count = 0;
	s->arena_used = 0;
	s->q.tx_n = 0;
	memset(&s->st, 0, sizeof(s->st));
	/* The descriptor's epoll instance and eventfd are shared with the
	 * parent: give the child its own, under the same number. */
	ep = epoll_create1(EPOLL_CLOEXEC);
	evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ep < 0 || evfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, evfd, &ev) < 0 ||
	    (s->bound && epoll_ctl(ep, EPOLL_CTL_ADD, s->q.fd, &ev) < 0) ||
	    dup3(ep, s->fd, fdfl >= 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		/* Keep the shared ones: readiness may then be wrong while the
		 * parent holds a batch, reads still are right. */
		if (ep >= 0)
			ld_divert_real.close(ep);
		if (evfd >= 0)
			ld_divert_real.close(evfd);
		s->signaled = 0;
		return;
	}
	ld_divert_real.close(ep);
	if (fl >= 0)
		fcntl(s->fd, F_SETFL, fl & O_NONBLOCK);
	ld_divert_real.close(s->evfd);
	s->evfd = evfd;
	s->signaled = 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * divert_int.h - inside libluadivert-divert: one divert socket on top of
 * the core's NFQUEUE code (core/nfq.c) and injector (core/inject.c).
 *
 *   user fd (an epoll instance) ──┬── the queue's netlink socket: readable when
 *                                 │   the kernel has a packet for us
 *                                 └── an eventfd: readable while packets read in
 *                                     a batch wait in our buffer
 *
 * So poll/select/epoll on the user's descriptor say "readable" exactly when a
 * recvfrom would return a packet, although the library reads up to
 * LD_BATCH_MAX packets per system call (recvmmsg) and sends the verdicts of
 * a batch in one sendmsg.
 *
 * A packet's life:
 *   read (recvfrom) ─► pending ring (id, a key that survives NAT rewrites, time)
 *   write (sendto)  ─► matched to a pending packet: verdict NF_ACCEPT, with the
 *                      new bytes if they changed; the packet goes on from the
 *                      NFQUEUE rule (later rules see it, this queue does not)
 *                  ─► no match (never read, or read long ago): a new packet,
 *                      sent through a raw socket with the skip mark
 *   neither         ─► NF_DROP after the time limit, at close, or when the
 *                      ring is full (counted as unwritten)
 */
#ifndef LD_DIVERT_INT_H
#define LD_DIVERT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../counters.h"
#include "../inject.h"
#include "../ld_abi.h"
#include "../log.h"
#include "../nfq.h"
#include "luadivert/divert.h"

#define LD_EXPORT __attribute__((visibility("default")))

enum {
	LD_DIVERT_ARENA    = 1 << 21,   /* bytes of written packets awaiting one sendmsg */
	LD_DIVERT_QUEUE_MAXLEN = 4096,  /* kernel queue length (LUADIVERT_DIVERT_QUEUE_MAXLEN) */
	LD_DIVERT_QUEUE_MAXLEN_MAX = 1 << 20,
	LD_DIVERT_FD_MAX   = 65536,     /* descriptors the table can track */
	LD_IFINFO_TTL_NS   = 1000 * 1000 * 1000, /* interface name/address re-read after 1 s */
};

/* A packet read and not yet written back or dropped. */
struct ld_divert_pending {
	uint32_t id;          /* the kernel's packet id */
	uint8_t  version;     /* 4 or 6 */
	uint8_t  proto;       /* IPv4 protocol / IPv6 next header */
	uint8_t  done;        /* written back (or dropped) already */
	uint8_t  pad;
	uint32_t ident;       /* IPv4 id / IPv6 flow label: kept by NAT rewrites */
	uint8_t  src[16];     /* addresses (IPv4 in the first 4 bytes) */
	uint8_t  dst[16];
	uint64_t read_ns;     /* when the program read it */
	uint64_t gen;         /* receive batch it came in (its bytes stay valid in it) */
	const uint8_t *data;  /* its bytes in the receive buffer, for "unchanged?" */
	uint32_t len;
};

struct ld_divert_sock {
	int      fd;              /* the user's descriptor (epoll instance) */
	int      evfd;            /* eventfd: readable while pkts[cur..n) wait */
	int      signaled;        /* evfd holds a count */
	int      bound;
	uint16_t port;            /* queue number */
	int      rcvbuf, sndbuf;  /* asked for before bind (0: not asked) */
	uint64_t timeout_ns;      /* unwritten packets are dropped after this */

	struct ld_nfq q;
	struct ld_counters c;
	struct ld_log_limit lim;
	struct ld_packet pkts[LD_BATCH_MAX];
	uint32_t n, cur;          /* packets in the batch; next to hand out */
	uint64_t gen;             /* batch counter */

	struct ld_divert_pending *ring;  /* LD_DIVERT_PENDING_MAX entries, read order */
	uint32_t head, count;

	uint8_t *arena;           /* copies of written bytes, until the next flush */
	size_t   arena_used;

	struct ld_inject inj;
	int      inj_open;

	/*
	 * Packets written back unchanged with consecutive ids: sent as one
	 * NFQNL_MSG_VERDICT_BATCH at flush when no older packet is still
	 * waiting for its write (the batch verdict covers every id up to
	 * acc_hi). Not after a fork: another process may hold older ids.
	 */
	uint32_t acc_lo, acc_hi, acc_n;
	int      forked;
	/* the interface of the last packet read (most packets share one) */
	uint32_t if_index;
	uint64_t if_when_ns;
	char     if_name[8];
	struct in_addr if_addr;

	struct ld_divert_stats st;
};

/* The C library's functions, looked up with dlsym(RTLD_NEXT). */
struct ld_divert_libc {
	int     (*socket)(int, int, int);
	int     (*bind)(int, const struct sockaddr *, socklen_t);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*write)(int, const void *, size_t);
	int     (*close)(int);
	int     (*setsockopt)(int, int, int, const void *, socklen_t);
	int     (*getsockopt)(int, int, int, void *, socklen_t *);
};

extern struct ld_divert_libc ld_divert_real;

/* divert_sock.c */
struct ld_divert_sock *ld_divert_sock_new(int type, int *err);
int     ld_divert_sock_bind(struct ld_divert_sock *s, const struct sockaddr *sa, socklen_t len);
ssize_t ld_divert_sock_recv(struct ld_divert_sock *s, void *buf, size_t len, int flags,
			    struct sockaddr *from, socklen_t *fromlen, int *msg_flags);
ssize_t ld_divert_sock_send(struct ld_divert_sock *s, const void *buf, size_t len,
			    const struct sockaddr *to, socklen_t tolen);
int     ld_divert_sock_setsockopt(struct ld_divert_sock *s, int level, int name,
				  const void *val, socklen_t len);
int     ld_divert_sock_getsockopt(struct ld_divert_sock *s, int level, int name,
				  void *val, socklen_t *len);
void    ld_divert_sock_flush(struct ld_divert_sock *s);
void    ld_divert_sock_close(struct ld_divert_sock *s);
void    ld_divert_sock_after_fork(struct ld_divert_sock *s);

/* divert_ifaddr.c: interface name and first IPv4 address, cached for a second */
void    ld_divert_ifinfo(uint32_t ifindex, char name[8], struct in_addr *addr);

#endif /* LD_DIVERT_INT_H */

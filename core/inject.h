/* SPDX-License-Identifier: MIT */
/*
 * inject.h - send copies of packets (duplicates asked for by a policy)
 * through raw sockets, with a mark that keeps them out of the queue.
 *
 *   policy: pkt.d.dup = n ──► core, after the verdict (at release for a held
 *   packet) ──► ld_inject_send() n times ──► raw socket, SO_MARK = skip mark
 *   ──► OUTPUT hook: the divert rules RETURN on the skip mark, so the copy
 *   is routed and sent, never queued again (no loop).
 *
 * IPv4 goes through socket(AF_INET, SOCK_RAW, IPPROTO_RAW), which implies
 * IP_HDRINCL: the kernel sends our header as is, except that it rewrites
 * the total length and the header checksum (and fills in a zero id or
 * source). IPv6 goes through socket(AF_INET6, SOCK_RAW, IPPROTO_RAW), which
 * implies IPV6_HDRINCL (Linux 4.5 and later). Neither fragments: a copy
 * larger than the route's MTU (a GSO packet) fails with EMSGSIZE and is
 * counted in too_big.
 *
 * Sockets are non-blocking: a full socket buffer drops the copy (counted),
 * it never stalls the worker. Nothing is allocated per packet.
 */
#ifndef LD_INJECT_H
#define LD_INJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum {
	/*
	 * Mark of injected packets; equal to LD_RULES_SKIP_MARK_DEFAULT so that
	 * the rules luadivert installs skip them (checked in inject.c).
	 */
	LD_INJECT_MARK_DEFAULT = 0x4c440000,
	LD_INJECT_BATCH = 64,          /* packets per ld_inject_send_many() */
};

#define LD_INJECT_NO_TAG 0xffffffffu   /* a packet ld_inject_send_tagged() logs not */

/*
 * struct ld_inject_log - the sendmmsg in flight, where a process that
 * outlives the sender reads it (the supervisor's shared region).
 *
 * A raw send, unlike a verdict, is not refused the second time: whoever
 * recovers from a killed sender must know which packets left. The kernel
 * says so itself: sendmmsg writes each message's msg_len into @mm right
 * after that message went out, before it looks at the next one. So @mm is
 * the array the call is given, not a copy: a message with msg_len != 0
 * was taken by the kernel, one with 0 was not, whenever the sender died.
 * A SIGKILL does not stop a non-blocking raw sendmmsg between two
 * messages (nothing in it sleeps, so nothing checks for signals): the
 * process dies on the way out of the call, after the last msg_len store.
 */
struct ld_inject_log {
	volatile uint32_t n;               /* messages of the call in flight; 0: none */
	uint32_t tag[LD_INJECT_BATCH];     /* the caller's tag of each message */
	struct mmsghdr mm[LD_INJECT_BATCH]; /* the sendmmsg array; msg_len 0 = not sent */
};

struct ld_inject {
	int      fd4;          /* AF_INET raw socket, or -1 */
	int      fd6;          /* AF_INET6 raw socket, or -1 when IPv6 is unavailable */
	uint32_t mark;         /* SO_MARK of both sockets */
	uint64_t sent;         /* copies the kernel accepted */
	uint64_t failed;       /* copies the kernel refused (all reasons below included) */
	uint64_t too_big;      /* ... of which EMSGSIZE: larger than the route's MTU */
	uint64_t no_buffer;    /* ... of which EAGAIN/ENOBUFS: socket or device queue full */
	uint64_t invalid;      /* not IPv4/IPv6, truncated, or no socket for the family */
	int      last_errno;   /* errno of the last failure, 0 if none */
	/* set by the caller after ld_inject_open(); NULL: tagged sends log nothing */
	struct ld_inject_log *log;
	/* called after a logged call returned, while log->n still covers it; then n = 0 */
	void   (*settle)(void *ctx, const struct ld_inject_log *log);
	void    *settle_ctx;
};

/**
 * ld_inject_open() - open the raw sockets used to inject copies
 * @inj: state to initialise (counters zeroed)
 * @mark: SO_MARK for every injected packet; 0 sends them unmarked (only
 *        safe when the divert rules cannot match them again)
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Needs CAP_NET_RAW, and CAP_NET_ADMIN for SO_MARK. The IPv6 socket is
 * optional: when the kernel has no IPv6, fd6 stays -1 and IPv6 copies count
 * as invalid.
 *
 * Return: 0, or -1 with @err filled in (nothing left open).
 */
int ld_inject_open(struct ld_inject *inj, uint32_t mark, char *err, size_t errlen);

/**
 * ld_inject_send() - send one copy of an IP packet, routed by its destination
 * @inj: open injector
 * @pkt: packet bytes, starting at the IPv4 or IPv6 header
 * @len: bytes at @pkt; bytes beyond the IP total length (padding) are not sent
 *
 * Return: 0 when the kernel took it, -1 with errno set otherwise (the
 * failure is counted; EINVAL for a packet that is not IP or is truncated).
 */
int ld_inject_send(struct ld_inject *inj, const uint8_t *pkt, uint32_t len);

/**
 * ld_inject_send_dev() - send one copy through a given output interface
 * @inj: open injector
 * @pkt: packet bytes, starting at the IPv4 or IPv6 header
 * @len: bytes at @pkt
 * @ifindex: output interface (struct ld_packet.outdev), 0 to route normally;
 *           needed for IPv6 link-local and multicast destinations
 *
 * Return: as ld_inject_send().
 */
int ld_inject_send_dev(struct ld_inject *inj, const uint8_t *pkt, uint32_t len,
		       uint32_t ifindex);

/**
 * ld_inject_send_many() - send up to LD_INJECT_BATCH packets with one sendmmsg
 * @inj: open injector
 * @pkts: packet bytes, each starting at its IP header
 * @lens: bytes at each
 * @n: packets (at most LD_INJECT_BATCH are looked at)
 * @ifindex: output interface for all of them, 0 to route normally
 *
 * For the segments of one GSO packet: one system call instead of one per
 * segment (one per family when IPv4 and IPv6 are mixed).
 * Return: packets the kernel took; each refusal is counted as in
 * ld_inject_send().
 */
uint32_t ld_inject_send_many(struct ld_inject *inj, const uint8_t *const *pkts,
			     const uint32_t *lens, uint32_t n, uint32_t ifindex);

/**
 * ld_inject_send_tagged() - ld_inject_send_many(), logged in inj->log
 * @inj: open injector
 * @pkts: packet bytes, each starting at its IP header
 * @lens: bytes at each
 * @tags: the caller's tag of each packet, copied into the log
 * @n: packets (at most LD_INJECT_BATCH are looked at)
 * @ifindex: output interface for all of them, 0 to route normally
 *
 * Without inj->log, as ld_inject_send_many(). With it, the messages are
 * built in inj->log->mm (IPv4 first, then IPv6: one sendmmsg per family),
 * log->n is set before the first system call, inj->settle() is called
 * after the last one, and log->n is reset to 0. Refused packets (not IP,
 * no socket) are not in the log.
 * Return: packets the kernel took.
 */
uint32_t ld_inject_send_tagged(struct ld_inject *inj, const uint8_t *const *pkts,
			       const uint32_t *lens, const uint32_t *tags, uint32_t n,
			       uint32_t ifindex);

/**
 * ld_inject_close() - close the sockets (counters are kept)
 * @inj: injector, opened or not (fds of -1 are skipped)
 */
void ld_inject_close(struct ld_inject *inj);

#endif /* LD_INJECT_H */

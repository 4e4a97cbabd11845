/* SPDX-License-Identifier: MIT */
/*
 * luadivert/divert.h - FreeBSD divert(4) sockets on Linux.
 *
 *   #include <luadivert/divert.h>          cc prog.c -lluadivert-divert
 *                                          (pkg-config luadivert-divert)
 *
 * A program written for FreeBSD's divert(4) builds and runs unchanged:
 *
 *   int fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT);
 *   struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(N) };
 *   bind(fd, (struct sockaddr *)&sin, sizeof(sin));   N = the NFQUEUE number
 *   n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen);
 *   ... look at or rewrite buf ...
 *   sendto(fd, buf, n, 0, (struct sockaddr *)&sin, slen);   write it back
 *   close(fd);
 *
 * libluadivert-divert interposes socket, bind, recv, recvfrom, recvmsg,
 * read, send, sendto, write, close, setsockopt and getsockopt: a call on a
 * divert descriptor is served from an NFQUEUE queue, every other descriptor
 * goes straight to the C library. Packets reach the queue through firewall
 * rules: `luadivert rules add --queue N --filter EXPR` (FreeBSD: `ipfw add
 * divert N ...`). divert(4) in this package's man pages says what is the
 * same as on FreeBSD, what differs, and how to port.
 */
#ifndef LUADIVERT_DIVERT_H
#define LUADIVERT_DIVERT_H

#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FreeBSD's protocol number for divert sockets (netinet/in.h there). */
#ifndef IPPROTO_DIVERT
#define IPPROTO_DIVERT 258
#endif

/*
 * FreeBSD's struct sockaddr_in starts with a length byte that Linux does not
 * have; divert programs often set it. It is mapped to the last byte of
 * sin_zero, which the interface name (at most 7 characters, as on FreeBSD)
 * never uses. Define LUADIVERT_NO_SIN_LEN before the include to keep the name
 * sin_len free.
 */
#if !defined(LUADIVERT_NO_SIN_LEN) && !defined(sin_len)
#define sin_len sin_zero[7]
#endif

/* Linux extensions: what FreeBSD does not count, a program may ask for. */
struct ld_divert_stats {
	uint64_t read;             /* packets handed to the program */
	uint64_t written_back;     /* writes matched to a packet read: verdict accept */
	uint64_t modified;         /* ... of which with changed bytes */
	uint64_t injected;         /* writes of new packets, sent through a raw socket */
	uint64_t inject_errors;    /* new packets the kernel refused */
	uint64_t unwritten;        /* read, never written back: dropped (time limit, close) */
	uint64_t truncated;        /* reads into a buffer shorter than the packet */
	uint64_t invalid_writes;   /* writes refused with EINVAL: not an IPv4/IPv6 packet */
	uint64_t kernel_dropped;   /* the kernel's queue_dropped + user_dropped for the queue */
};

/**
 * ld_divert_stats() - counters of one divert socket (a Linux extension)
 * @fd: divert socket
 * @st: filled in
 *
 * Return: 0, or -1 with errno EBADF when @fd is not a divert socket.
 */
int ld_divert_stats(int fd, struct ld_divert_stats *st);

/*
 * How long a packet that was read but not written back stays in the kernel
 * before it is dropped: by default LD_DIVERT_UNWRITTEN_MS milliseconds, or
 * the environment variable LUADIVERT_DIVERT_TIMEOUT_MS. A packet is gone
 * then, at close(), or when LD_DIVERT_PENDING_MAX packets are waiting.
 */
enum {
	LD_DIVERT_UNWRITTEN_MS = 1000,
	LD_DIVERT_PENDING_MAX  = 4096,
};

#ifdef __cplusplus
}
#endif

#endif /* LUADIVERT_DIVERT_H */

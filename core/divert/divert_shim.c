// SPDX-License-Identifier: MIT
/*
 * divert_shim.c - the socket calls a FreeBSD divert program makes, served
 * by interposition: a program linked with -lluadivert-divert resolves
 * socket(), recvfrom(), sendto() ... to these functions first. A call on a
 * divert descriptor goes to divert_sock.c; any other descriptor goes to
 * the C library's own function (dlsym(RTLD_NEXT)), so the program's other
 * sockets and files behave exactly as before.
 *
 * The descriptor table is indexed by fd; a look-up is one load, which is
 * all a non-divert read() or write() pays. One divert socket is not
 * meant to be used by two threads at once (as with most socket code).
 */
#include "divert_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ld_divert_libc ld_divert_real;

static struct ld_divert_sock *_Atomic table[LD_DIVERT_FD_MAX];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#define RESOLVE(name) \
	(*(void **)&ld_divert_real.name = dlsym(RTLD_NEXT, #name))

static void each_sock(void (*fn)(struct ld_divert_sock *))
{
	for (int fd = 0; fd < LD_DIVERT_FD_MAX; fd++) {
		struct ld_divert_sock *s = atomic_load_explicit(&table[fd], memory_order_acquire);

		if (s)
			fn(s);
	}
}

/* Verdicts in hand go out before fork, so the child cannot send them again. */
static void before_fork(void)
{
	pthread_mutex_lock(&table_lock);
	each_sock(ld_divert_sock_flush);
}

static void mark_forked(struct ld_divert_sock *s)
{
	s->forked = 1;
}

/* Both sides now share the queue: no more batch verdicts (divert_int.h). */
static void parent_after_fork(void)
{
	each_sock(mark_forked);
	pthread_mutex_unlock(&table_lock);
}

static void child_after_fork(void)
{
	each_sock(ld_divert_sock_after_fork);
	pthread_mutex_unlock(&table_lock);
}

static void resolve_all(void)
{
	RESOLVE(socket);
	RESOLVE(bind);
	RESOLVE(recv);
	RESOLVE(recvfrom);
	RESOLVE(recvmsg);
	RESOLVE(read);
	RESOLVE(send);
	RESOLVE(sendto);
	RESOLVE(write);
	RESOLVE(close);
	RESOLVE(setsockopt);
	RESOLVE(getsockopt);
	pthread_atfork(before_fork, parent_after_fork, child_after_fork);
}

__attribute__((constructor)) static void ld_divert_init(void)
{
	pthread_once(&init_once, resolve_all);
}

/* Calls can come before our constructor ran (another library's constructor). */
static inline void ensure_init(void)
{
	if (__builtin_expect(!ld_divert_real.close, 0))
		pthread_once(&init_once, resolve_all);
}

static inline struct ld_divert_sock *lookup(int fd)
{
	if (fd < 0 || fd >= LD_DIVERT_FD_MAX)
		return NULL;
	return atomic_load_explicit(&table[fd], memory_order_acquire);
}

LD_EXPORT int socket(int domain, int type, int protocol)
{
	struct ld_divert_sock *s;
	int e = 0;

	ensure_init();
	if (domain != PF_INET || (type & 0xf) != SOCK_RAW || protocol != IPPROTO_DIVERT)
		return ld_divert_real.socket(domain, type, protocol);
	s = ld_divert_sock_new(type, &e);
	if (!s) {
		errno = e;
		return -1;
	}
	if (s->fd >= LD_DIVERT_FD_MAX) {
		ld_divert_real.close(s->fd);
		ld_divert_sock_close(s);
		errno = EMFILE;
		return -1;
	}
	pthread_mutex_lock(&table_lock);
	atomic_store_explicit(&table[s->fd], s, memory_order_release);
	pthread_mutex_unlock(&table_lock);
	return s->fd;
}

LD_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	return s ? ld_divert_sock_bind(s, sa, len) : ld_divert_real.bind(fd, sa, len);
}

LD_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
			   socklen_t *fromlen)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.recvfrom(fd, buf, len, flags, from, fromlen);
	return ld_divert_sock_recv(s, buf, len, flags, from, fromlen, NULL);
}

LD_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.recv(fd, buf, len, flags);
	return ld_divert_sock_recv(s, buf, len, flags, NULL, NULL, NULL);
}

LD_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.read(fd, buf, len);
	return ld_divert_sock_recv(s, buf, len, 0, NULL, NULL, NULL);
}

LD_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct ld_divert_sock *s;
	socklen_t namelen;
	ssize_t n;
	size_t room = 0, off = 0;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.recvmsg(fd, msg, flags);
	/* One packet into the first iovec that has room; the rest is
	 * scattered by copying, which recvmsg users of divert never need
	 * to be fast. */
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		room += msg->msg_iov[i].iov_len;
	{
		uint8_t tmp[LD_PACKET_MAX];
		size_t want = room < sizeof(tmp) ? room : sizeof(tmp);

		namelen = msg->msg_namelen;
		msg->msg_flags = 0;
		n = ld_divert_sock_recv(s, tmp, want, flags, msg->msg_name,
					msg->msg_name ? &namelen : NULL, &msg->msg_flags);
		if (n < 0)
			return -1;
		for (size_t i = 0; i < msg->msg_iovlen && off < want && off < (size_t)n; i++) {
			size_t k = msg->msg_iov[i].iov_len;
			size_t left = ((size_t)n < want ? (size_t)n : want) - off;

			if (k > left)
				k = left;
			memcpy(msg->msg_iov[i].iov_base, tmp + off, k);
			off += k;
		}
		if (msg->msg_name)
			msg->msg_namelen = namelen;
		msg->msg_controllen = 0;
	}
	return n;
}

LD_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *to, socklen_t tolen)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.sendto(fd, buf, len, flags, to, tolen);
	return ld_divert_sock_send(s, buf, len, to, tolen);
}

LD_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.send(fd, buf, len, flags);
	return ld_divert_sock_send(s, buf, len, NULL, 0);
}

LD_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.write(fd, buf, len);
	return ld_divert_sock_send(s, buf, len, NULL, 0);
}

LD_EXPORT int close(int fd)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.close(fd);
	pthread_mutex_lock(&table_lock);
	atomic_store_explicit(&table[fd], NULL, memory_order_release);
	pthread_mutex_unlock(&table_lock);
	ld_divert_sock_close(s);
	return ld_divert_real.close(fd);
}

LD_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.setsockopt(fd, level, name, val, len);
	return ld_divert_sock_setsockopt(s, level, name, val, len);
}

LD_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct ld_divert_sock *s;

	ensure_init();
	s = lookup(fd);
	if (!s)
		return ld_divert_real.getsockopt(fd, level, name, val, len);
	return ld_divert_sock_getsockopt(s, level, name, val, len);
}

/* _FORTIFY_SOURCE turns calls with a known buffer size into these. */
static void chk(size_t len, size_t buflen)
{
	if (len > buflen) {
		static const char m[] = "*** buffer overflow detected ***: terminated\n";

		(void)!ld_divert_real.write(2, m, sizeof(m) - 1);
		abort();
	}
}

LD_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	chk(len, buflen);
	return read(fd, buf, len);
}

LD_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	chk(len, buflen);
	return recv(fd, buf, len, flags);
}

LD_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
				 struct sockaddr *from, socklen_t *fromlen)
{
	chk(len, buflen);
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

LD_EXPORT int ld_divert_stats(int fd, struct ld_divert_stats *st)
{
	struct ld_divert_sock *s = lookup(fd);
	struct ld_kernel_counters k;

	if (!s || !st) {
		errno = s ? EINVAL : EBADF;
		return -1;
	}
	*st = s->st;
	if (s->bound && ld_kernel_counters_read(s->port, &k) == 0 && k.valid)
		st->kernel_dropped = (uint64_t)k.queue_dropped + k.user_dropped;
	return 0;
}

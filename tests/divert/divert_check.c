/* SPDX-License-Identifier: MIT */
/*
 * divert_check - the divert(4) API's edges, against a real queue:
 * errors (a port already bound, short buffers, malformed writes),
 * readiness (poll, EAGAIN), SO_RCVBUF, fork, a packet written without a
 * read, the time limit of unwritten packets, and the program's other
 * sockets working untouched.
 *
 *   divert_check PORT UDPPORT
 *
 * Expects `luadivert rules add --queue PORT --hook output --filter 'udp dst
 * port UDPPORT'` in its network namespace (loopback up). Prints "ok - ..."
 * or "not ok - ..." per check; exit status 1 if any failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <luadivert/divert.h>

static int failures;

#define CHECK(cond, ...) do { \
	int ok_ = (cond); \
	printf("%s - ", ok_ ? "ok" : "not ok"); \
	printf(__VA_ARGS__); \
	printf("\n"); \
	if (!ok_) failures++; \
} while (0)

static int port, udpport;
static int rx, tx;
static struct sockaddr_in dst;

static void send_dgram(const char *text)
{
	if (sendto(tx, text, strlen(text), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		perror("sendto udp");
}

/* The next datagram at the receiver ("" after 2 s of nothing). */
static const char *next_dgram(void)
{
	static char buf[2048];
	ssize_t n = recv(rx, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int queue_listed(void)
{
	char line[256];
	unsigned q;
	int found = 0;
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%u", &q) == 1 && (int)q == port)
			found = 1;
	fclose(f);
	return found;
}

static int divert_socket(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Read one packet and write it back unchanged; return its length or -1. */
static int pass_one(int fd)
{
	uint8_t buf[2048];
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &sl);

	if (n < 0 || sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&sin, sl) != n)
		return -1;
	return (int)n;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 2 };
	struct pollfd pfd;
	struct ld_divert_stats st;
	uint8_t buf[2048], pkt[64], pkt2[2048];
	struct iovec iov;
	struct msghdr mh;
	socklen_t sl;
	ssize_t n;
	int fd, fd2, v, fl, status;
	pid_t pid;

	if (argc != 3)
		return 2;
	port = atoi(argv[1]);
	udpport = atoi(argv[2]);
	dst.sin_family = AF_INET;
	dst.sin_port = htons(udpport);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rx = socket(AF_INET, SOCK_DGRAM, 0);
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
	    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		perror("udp sockets");
		return 2;
	}

	/* --- the socket, its options, a second bind */
	fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT);
	CHECK(fd >= 0, "socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT)");
	sl = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &sl) == 0 && v == SOCK_RAW, "SO_TYPE is SOCK_RAW");
	v = 1 << 20;
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) == 0, "SO_RCVBUF before bind");
	sin.sin_port = htons(port);
	CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == ENOTCONN,
	      "read before bind: ENOTCONN");
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "bind to divert port %d", port);
	sl = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &sl) == 0 && v >= 1 << 20,
	      "SO_RCVBUF applied to the queue's socket (%d)", v);
	CHECK(queue_listed(), "queue %d bound in the kernel", port);
	fd2 = divert_socket();
	CHECK(fd2 < 0 && errno == EADDRINUSE, "second bind to port %d: EADDRINUSE (%s)", port,
	      strerror(errno));

	/* --- readiness */
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	CHECK(poll(&pfd, 1, 0) == 0, "poll: not readable while nothing waits");
	CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN,
	      "MSG_DONTWAIT read: EAGAIN");
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	CHECK(read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN, "O_NONBLOCK read: EAGAIN");
	fcntl(fd, F_SETFL, fl);

	/* --- a packet, read with a short buffer and never written back */
	{
		struct epoll_event ev = { .events = EPOLLIN }, out;
		struct timeval zero = { 0 };
		int ep = epoll_create1(0);
		fd_set rd;

		CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 &&
		      epoll_wait(ep, &out, 1, 0) == 0, "epoll: not readable while nothing waits");
		send_dgram("first: never written back");
		pfd.revents = 0;
		CHECK(poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLIN),
		      "poll: readable when a packet waits");
		FD_ZERO(&rd);
		FD_SET(fd, &rd);
		CHECK(select(fd + 1, &rd, NULL, NULL, &zero) == 1 && FD_ISSET(fd, &rd),
		      "select: readable");
		CHECK(epoll_wait(ep, &out, 1, 0) == 1 && (out.events & EPOLLIN), "epoll: readable");
		close(ep);
	}
	n = recvfrom(fd, buf, 10, MSG_PEEK | MSG_TRUNC, NULL, NULL);
	CHECK(n == 20 + 8 + 25, "MSG_PEEK|MSG_TRUNC gives the whole length (%zd)", n);
	memset(&mh, 0, sizeof(mh));
	iov = (struct iovec){ buf, 10 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_name = &sin;
	mh.msg_namelen = sizeof(sin);
	n = recvmsg(fd, &mh, 0);
	CHECK(n == 10 && (mh.msg_flags & MSG_TRUNC), "short buffer: 10 bytes and MSG_TRUNC, as raw sockets");
	pfd.revents = 0;
	CHECK(poll(&pfd, 1, 0) == 0, "poll: not readable once the packet was read");
	CHECK(sin.sin_addr.s_addr == INADDR_ANY && !strcmp((char *)sin.sin_zero, "lo"),
	      "outbound: sin_addr INADDR_ANY, interface lo (%s, \"%.7s\")", inet_ntoa(sin.sin_addr),
	      (char *)sin.sin_zero);
	CHECK(ntohs(sin.sin_port) == port, "sin_port: the divert port");
	CHECK(sendto(fd, buf, 10, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno == EINVAL,
	      "writing the truncated 10 bytes: EINVAL");
	CHECK(write(fd, "abc", 3) < 0 && errno == EINVAL, "writing 3 bytes: EINVAL");
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = 0x45;
	pkt[3] = 100;    /* total length 100 in a 20-byte write */
	CHECK(send(fd, pkt, 20, 0) < 0 && errno == EINVAL, "IPv4 total length beyond the write: EINVAL");
	pkt[0] = 0x75;
	CHECK(send(fd, pkt, 20, 0) < 0 && errno == EINVAL, "IP version 7: EINVAL");

	/* --- a packet read and written back arrives; the unwritten one does not */
	send_dgram("second: written back");
	CHECK(pass_one(fd) > 0, "read and write back");
	CHECK(!strcmp(next_dgram(), "second: written back"),
	      "the packet written back arrives, the unwritten one is missing");

	/* --- a packet never read: injected as a new one */
	{
		struct ip *ip = (struct ip *)pkt;
		const char *text = "crafted";
		size_t len = 20 + 8 + strlen(text);

		memset(pkt, 0, sizeof(pkt));
		ip->ip_v = 4;
		ip->ip_hl = 5;
		ip->ip_len = htons((uint16_t)len);
		ip->ip_ttl = 64;
		ip->ip_p = IPPROTO_UDP;
		ip->ip_src.s_addr = htonl(INADDR_LOOPBACK);
		ip->ip_dst.s_addr = htonl(INADDR_LOOPBACK);
		pkt[20] = 0x9c; pkt[21] = 0x40;                 /* source port 40000 */
		pkt[22] = (uint8_t)(udpport >> 8); pkt[23] = (uint8_t)udpport;
		pkt[24] = 0; pkt[25] = (uint8_t)(8 + strlen(text));
		memcpy(pkt + 28, text, strlen(text));           /* UDP checksum 0: none */
		sin.sin_addr.s_addr = INADDR_ANY;
		CHECK(sendto(fd, pkt, len, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)len,
		      "write a packet never read");
		CHECK(!strcmp(next_dgram(), "crafted"), "the crafted packet arrives");
	}

	/* --- fork: the child reads and writes on the inherited socket */
	send_dgram("third: through the child");
	pid = fork();
	if (pid == 0)
		_exit(pass_one(fd) > 0 ? 0 : 1);
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "forked child reads and writes back");
	CHECK(!strcmp(next_dgram(), "third: through the child"), "the child's packet arrives");
	CHECK(queue_listed(), "the child's exit left the queue bound");
	send_dgram("fourth: parent again");
	CHECK(pass_one(fd) > 0 && !strcmp(next_dgram(), "fourth: parent again"),
	      "the parent goes on after the child exited");

	CHECK(ld_divert_stats(fd, &st) == 0 && st.read == 3 && st.written_back == 2 &&
	      st.injected == 1 && st.truncated == 1 && st.invalid_writes == 4,
	      "counters: read %llu written_back %llu injected %llu truncated %llu invalid %llu",
	      (unsigned long long)st.read, (unsigned long long)st.written_back,
	      (unsigned long long)st.injected, (unsigned long long)st.truncated,
	      (unsigned long long)st.invalid_writes);
	CHECK(close(fd) == 0, "close");
	CHECK(!queue_listed(), "queue %d unbound after close", port);
	CHECK(ld_divert_stats(fd, &st) < 0 && errno == EBADF, "closed: no longer a divert socket");
	/* --- the time limit: an unwritten packet is dropped (and counted) at the
	 *     first read after it; written later, it is a new packet */
	setenv("LUADIVERT_DIVERT_TIMEOUT_MS", "100", 1);
	fd = divert_socket();
	CHECK(fd >= 0, "a new socket on port %d after the close", port);
	send_dgram("fifth: written after the limit");
	sl = sizeof(sin);
	n = recvfrom(fd, pkt2, sizeof(pkt2), 0, (struct sockaddr *)&sin, &sl);
	CHECK(n > 0, "read a packet and keep it");
	usleep(300 * 1000);                /* past the 100 ms limit */
	send_dgram("sixth: in time");
	CHECK(pass_one(fd) > 0 && !strcmp(next_dgram(), "sixth: in time"), "the next one passes");
	CHECK(ld_divert_stats(fd, &st) == 0 && st.unwritten == 1,
	      "the kept one was dropped at the limit (unwritten %llu)",
	      (unsigned long long)st.unwritten);
	CHECK(n > 0 && sendto(fd, pkt2, (size_t)n, 0, (struct sockaddr *)&sin, sl) == n &&
	      !strcmp(next_dgram(), "fifth: written after the limit"),
	      "written after the limit: sent as a new packet, arrives");
	CHECK(ld_divert_stats(fd, &st) == 0 && st.injected == 1 && st.written_back == 1,
	      "counted as injected (%llu), not written back", (unsigned long long)st.injected);
	CHECK(close(fd) == 0, "close");

	/* other sockets kept working throughout (rx/tx above); and close them */
	CHECK(close(rx) == 0 && close(tx) == 0, "other sockets close normally");
	return failures ? 1 : 0;
}

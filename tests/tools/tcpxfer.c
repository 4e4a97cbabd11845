/* SPDX-License-Identifier: MIT */
/*
 * tcpxfer - move a reproducible byte stream over TCP and hash both ends.
 *
 *   tcpxfer send --dst ADDR --port P --bytes N [--seed S] [--time-limit SECONDS]
 *   tcpxfer recv --port P [--bind ADDR] [--ready FILE] [--time-limit SECONDS]
 *
 * The sender writes N bytes from a xorshift64* generator seeded with S and
 * prints {"sent":N,"hash":"<fnv1a64>","elapsed_s":T,"mbps":R}; the receiver
 * accepts one connection, reads to EOF and prints
 * {"received":N,"hash":"<fnv1a64>","elapsed_s":T,"mbps":R}.
 * Equal hashes and counts mean the stream arrived intact. Both ends give up
 * at --time-limit (default 30 s) and then exit 1 after printing what they had.
 */
#include "tool_common.h"

#include <getopt.h>
#include <poll.h>
#include <unistd.h>

static const char usage[] =
	"tcpxfer send --dst ADDR --port P --bytes N [--seed S] [--time-limit SECONDS]\n"
	"       tcpxfer recv --port P [--bind ADDR] [--ready FILE] [--time-limit SECONDS]";

enum { CHUNK = 256 * 1024 };

static const uint64_t FNV_OFFSET = 0xcbf29ce484222325ull;
static const uint64_t FNV_PRIME = 0x100000001b3ull;

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

/* xorshift64*: fills buf with the next n bytes of the stream */
static void stream_fill(uint64_t *state, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = *state;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*state = x;
		uint64_t v = x * 0x2545f4914f6cdd1dull;
		for (size_t k = 0; k < 8 && i + k < n; k++)
			buf[i + k] = (uint8_t)(v >> (8 * k));
	}
}

/* wait_fd - poll fd for EVENTS until deadline; 0 ready, -1 timed out or stopped */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t t = now_ns();
		if (tool_stop || t >= deadline)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = events };
		int ms = (int)((deadline - t + 999999) / 1000000);
		int r = poll(&pfd, 1, ms > 1000 ? 1000 : ms);
		if (r < 0 && errno != EINTR)
			die("poll:");
		if (r > 0)
			return 0;
	}
}

static void report(const char *what, uint64_t n, uint64_t h, uint64_t start)
{
	double el = (double)(now_ns() - start) / 1e9;

	printf("{\"%s\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\",\"elapsed_s\":%.3f,\"mbps\":%.1f}\n",
	       what, n, h, el, el > 0 ? (double)n * 8 / el / 1e6 : 0.0);
	if (fflush(stdout) == EOF)
		die("stdout:");
}

static int do_send(const char *dst, uint16_t port, uint64_t bytes, uint64_t seed, uint64_t limit)
{
	struct sockaddr_storage to;
	socklen_t tolen = parse_addr(dst, port, &to);

	if (!tolen)
		usage_error(usage, "--dst must be an IPv4 or IPv6 address");
	int fd = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket:");
	uint64_t start = now_ns(), deadline = start + limit;
	if (connect(fd, (struct sockaddr *)&to, tolen) < 0 && errno != EINPROGRESS)
		die("connect %s:", dst);
	if (wait_fd(fd, POLLOUT, deadline) < 0)
		die("connect %s: timed out", dst);
	int err = 0;
	socklen_t elen = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		die("SO_ERROR:");
	if (err) {
		errno = err;
		die("connect %s:", dst);
	}

	static uint8_t buf[CHUNK];
	uint64_t state = seed ? seed : 0x9e3779b97f4a7c15ull, h = FNV_OFFSET, sent = 0;
	size_t have = 0, off = 0;
	int rc = 0;
	while (sent < bytes) {
		if (off == have) {
			have = bytes - sent < CHUNK ? (size_t)(bytes - sent) : CHUNK;
			stream_fill(&state, buf, have);
			off = 0;
		}
		ssize_t w = send(fd, buf + off, have - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				if (wait_fd(fd, POLLOUT, deadline) < 0) {
					rc = 1;
					break;
				}
				continue;
			}
			die("send:");
		}
		h = fnv1a(h, buf + off, (size_t)w);
		off += (size_t)w;
		sent += (uint64_t)w;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown:");
	/* wait for the receiver to close, so "sent" means delivered to its socket */
	while (!rc) {
		char sink[256];
		ssize_t r = recv(fd, sink, sizeof(sink), 0);
		if (r == 0)
			break;
		if (r > 0)
			continue;
		if (errno != EAGAIN && errno != EINTR)
			die("recv:");
		if (wait_fd(fd, POLLIN, deadline) < 0)
			rc = 1;
	}
	report("sent", sent, h, start);
	if (close(fd) < 0)
		die("close:");
	if (rc)
		fprintf(stderr, "tcpxfer: time limit reached\n");
	return rc;
}

static int do_recv(const char *bind_addr, uint16_t port, const char *ready, uint64_t limit)
{
	int lfd = bind_any(SOCK_STREAM, bind_addr, port);
	if (listen(lfd, 1) < 0)
		die("listen:");
	write_ready(ready);
	uint64_t start = now_ns(), deadline = start + limit;
	if (wait_fd(lfd, POLLIN, deadline) < 0) {
		report("received", 0, FNV_OFFSET, start);
		fprintf(stderr, "tcpxfer: no connection before the time limit\n");
		return 1;
	}
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		die("accept:");
	start = now_ns();

	static uint8_t buf[CHUNK];
	uint64_t h = FNV_OFFSET, got = 0;
	int rc = 0;
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				die("recv:");
			if (wait_fd(fd, POLLIN, deadline) < 0) {
				rc = 1;
				break;
			}
			continue;
		}
		h = fnv1a(h, buf, (size_t)r);
		got += (uint64_t)r;
	}
	report("received", got, h, start);
	if (close(fd) < 0 || close(lfd) < 0)
		die("close:");
	if (rc)
		fprintf(stderr, "tcpxfer: time limit reached\n");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'B' },
		{ "bytes", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "ready", required_argument, NULL, 'R' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dst = NULL, *bind_addr = NULL, *ready = NULL;
	uint64_t port = 0, bytes = 0, seed = 1, limit = 30ull * TOOL_NS_PER_SEC;
	int c, have_bytes = 0;

	tool_name = "tcpxfer";
	const char *mode = tool_mode(argc, argv, usage, "send or recv?");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dst = optarg; break;
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'B': bind_addr = optarg; break;
		case 'n': bytes = parse_u64(usage, "--bytes", optarg, 0, UINT64_MAX / 2); have_bytes = 1; break;
		case 's': seed = parse_u64(usage, "--seed", optarg, 0, UINT64_MAX); break;
		case 'R': ready = optarg; break;
		case 't': limit = parse_seconds(usage, "--time-limit", optarg); break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: usage_error(usage, "unknown option");
		}
	}
	if (optind != argc)
		usage_error(usage, "unexpected argument");
	if (!port)
		usage_error(usage, "--port is required");
	catch_stop_signals();
	if (!strcmp(mode, "send")) {
		if (!dst || !have_bytes)
			usage_error(usage, "send needs --dst and --bytes");
		return do_send(dst, (uint16_t)port, bytes, seed, limit);
	}
	if (!strcmp(mode, "recv"))
		return do_recv(bind_addr, (uint16_t)port, ready, limit);
	usage_error(usage, "the first argument is send or recv");
}

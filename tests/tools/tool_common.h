/* SPDX-License-Identifier: MIT */
/*
 * tool_common.h - small helpers shared by the test traffic tools in
 * tests/tools/ (each tool is one .c file that includes this header).
 *
 * Payload format shared by udpsend, udprecv and udpping (all little endian):
 *
 *   0               8               16                        size
 *   +---------------+---------------+--------------------------+
 *   | sequence (u64)| send time (ns)|  filler (--payload-byte) |
 *   +---------------+---------------+--------------------------+
 *
 * The send time is CLOCK_MONOTONIC, so one-way delays are only meaningful
 * between processes on the same machine (which is how the tests run).
 */
#ifndef LD_TOOL_COMMON_H
#define LD_TOOL_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum {
	TOOL_HDR_LEN     = 16,      /* sequence + timestamp */
	TOOL_MAX_DGRAM   = 65507,   /* largest UDP payload over IPv4 */
	TOOL_BURST       = 64,      /* datagrams per sendmmsg/recvmmsg */
	TOOL_NS_PER_SEC  = 1000000000,
};

static const char *tool_name = "tool";

/* die - print "name: message[: strerror]" and exit 1. */
static inline void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	fprintf(stderr, "%s: ", tool_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (fmt[0] && fmt[strlen(fmt) - 1] == ':')
		fprintf(stderr, " %s", strerror(e));
	fputc('\n', stderr);
	exit(1);
}

/* usage_error - bad command line: message + usage on stderr, exit 2. */
static inline void __attribute__((noreturn)) usage_error(const char *usage, const char *what)
{
	fprintf(stderr, "%s: %s\nusage: %s\n", tool_name, what, usage);
	exit(2);
}

/*
 * tool_mode - for tools whose first argument is a mode ("send"/"recv"):
 * return it, with getopt set to parse the options after it. --help as the
 * first argument prints the usage and exits 0; no argument exits 2.
 */
static inline const char *tool_mode(int argc, char **argv, const char *usage, const char *what)
{
	if (argc < 2)
		usage_error(usage, what);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: %s\n", usage);
		exit(0);
	}
	optind = 2;
	return argv[1];
}

/* now_ns - CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		die("clock_gettime:");
	return (uint64_t)ts.tv_sec * TOOL_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* sleep_until_ns - absolute CLOCK_MONOTONIC sleep (restarts on EINTR). */
static inline void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / TOOL_NS_PER_SEC),
	                       .tv_nsec = (long)(t % TOOL_NS_PER_SEC) };
	int rc;

	do
		rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	while (rc == EINTR);
	if (rc != 0) {
		errno = rc;
		die("clock_nanosleep:");
	}
}

/* parse_u64 - a whole decimal (or 0x hex) number within [min, max], or exit 2. */
static inline uint64_t parse_u64(const char *usage, const char *opt, const char *s,
                          uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s ? s : "", &end, 0);
	if (!s || !*s || *end || errno || s[0] == '-' || v < min || v > max) {
		char msg[160];
		snprintf(msg, sizeof(msg), "bad value for %s: '%s' (%" PRIu64 "..%" PRIu64 ")",
		         opt, s ? s : "", min, max);
		usage_error(usage, msg);
	}
	return (uint64_t)v;
}

/* parse_seconds - a time limit like "5" or "2.5", in nanoseconds (> 0). */
static inline uint64_t parse_seconds(const char *usage, const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s ? s : "", &end);
	if (!s || !*s || *end || errno || !(v > 0) || v > 86400) {
		char msg[160];
		snprintf(msg, sizeof(msg), "bad value for %s: '%s' (seconds, > 0)", opt, s ? s : "");
		usage_error(usage, msg);
	}
	return (uint64_t)(v * 1e9);
}

/*
 * parse_addr - fill ss with ADDR (IPv4 or IPv6 literal) and port; returns
 * the address length, or 0 if ADDR is not a literal address.
 */
static inline socklen_t parse_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return sizeof(*s6);
	}
	return 0;
}

/*
 * bind_any - a socket of type TYPE bound to BIND (or [::] dual-stack, which
 * also receives IPv4, when BIND is NULL) on PORT. Exits on failure.
 */
static inline int bind_any(int type, const char *bind_addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(bind_addr ? bind_addr : "::", port, &ss);
	int fd, one = 1, zero = 0;

	if (!len)
		die("not an IPv4/IPv6 address: %s", bind_addr);
	fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket:");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("SO_REUSEADDR:");
	if (ss.ss_family == AF_INET6 && !bind_addr &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
		die("IPV6_V6ONLY:");
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die("bind port %u:", port);
	return fd;
}

/* set_rcvbuf - ask for a big receive buffer (FORCE as root, else capped). */
static inline void set_rcvbuf(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) < 0)
		die("SO_RCVBUF:");
}

/* put_u64 / get_u64 - little-endian 64-bit fields of the payload header. */
static inline void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* percentile - the P-th percentile (0..100) of n sorted values (nearest rank). */
static inline uint64_t percentile(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* write_ready - create FILE containing "ready\n" so a test can wait for it. */
static inline void write_ready(const char *file)
{
	if (!file)
		return;
	FILE *f = fopen(file, "w");
	if (!f)
		die("open %s:", file);
	if (fputs("ready\n", f) == EOF || fclose(f) == EOF)
		die("write %s:", file);
}

/* stop flag set by SIGINT/SIGTERM: tools finish and print their report */
static volatile sig_atomic_t tool_stop;

static inline void tool_on_signal(int sig)
{
	(void)sig;
	tool_stop = 1;
}

/* catch_stop_signals - SIGINT/SIGTERM end the run (no SA_RESTART: syscalls return EINTR). */
static inline void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tool_on_signal;
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		die("sigaction:");
}

#endif /* LD_TOOL_COMMON_H */

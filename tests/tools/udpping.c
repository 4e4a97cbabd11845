/* SPDX-License-Identifier: MIT */
/*
 * udpping - UDP request/response round-trip times.
 *
 *   udpping server --port P [--bind ADDR] [--ready FILE] [--time-limit SECONDS]
 *   udpping client --dst ADDR --port P [--count N] [--rate PPS] [--size BYTES]
 *                  [--wait-ms MS] [--time-limit SECONDS]
 *
 * The server echoes every datagram back to its sender (recvmmsg/sendmmsg)
 * until SIGINT/SIGTERM or --time-limit (default 60 s). The client sends
 * --count requests (default 1000) at --rate per second (default 1000), each
 * carrying the tool_common.h header (sequence, CLOCK_MONOTONIC send time),
 * matches the echoes by sequence, waits --wait-ms (default 500) after the
 * last request, and prints one line:
 *
 *   {"sent":S,"received":R,"lost":L,"rtt_us_p50":..,"rtt_us_p99":..,
 *    "rtt_us_max":..,"rtt_us_mean":..}
 *
 * A later echo of the same sequence (a duplicate) is ignored.
 */
#include "tool_common.h"

#include <getopt.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

static const char usage[] =
	"udpping server --port P [--bind ADDR] [--ready FILE] [--time-limit SECONDS]\n"
	"       udpping client --dst ADDR --port P [--count N] [--rate PPS] [--size BYTES]\n"
	"                      [--wait-ms MS] [--time-limit SECONDS]";

static int do_server(const char *bind_addr, uint16_t port, const char *ready, uint64_t limit)
{
	int fd = bind_any(SOCK_DGRAM, bind_addr, port);
	set_rcvbuf(fd, 4 << 20);
	write_ready(ready);

	static uint8_t bufs[TOOL_BURST][TOOL_MAX_DGRAM + 1];
	struct sockaddr_storage from[TOOL_BURST];
	struct iovec iov[TOOL_BURST];
	struct mmsghdr msgs[TOOL_BURST];
	uint64_t deadline = now_ns() + limit, echoed = 0;

	while (!tool_stop) {
		uint64_t t = now_ns();
		if (t >= deadline)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t ms = (deadline - t + 999999) / 1000000;
		int pr = poll(&pfd, 1, ms > 1000 ? 1000 : (int)ms);
		if (pr < 0 && errno != EINTR)
			die("poll:");
		if (pr <= 0)
			continue;
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < TOOL_BURST; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(fd, msgs, TOOL_BURST, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("recvmmsg:");
		}
		for (int i = 0; i < n; i++)
			iov[i].iov_len = msgs[i].msg_len;
		int off = 0;
		while (off < n) {
			int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
			if (s < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EPERM && errno != ENOBUFS && errno != EAGAIN &&
				    errno != ECONNREFUSED)
					die("sendmmsg:");
				s = 1;   /* this echo is lost; go on with the rest */
			} else {
				echoed += (uint64_t)s;
			}
			off += s;
		}
	}
	fprintf(stderr, "udpping: server echoed %" PRIu64 "\n", echoed);
	if (close(fd) < 0)
		die("close:");
	return 0;
}

/* drain - read every echo waiting on fd, record the round trips */
static void drain(int fd, uint8_t *seen, uint64_t count, uint64_t *rtt, uint64_t *nrtt)
{
	uint8_t buf[TOOL_MAX_DGRAM + 1];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNREFUSED)
				continue;   /* an earlier request found no server */
			die("recv:");
		}
		uint64_t t = now_ns();
		if (r < TOOL_HDR_LEN)
			continue;
		uint64_t seq = get_u64(buf), ts = get_u64(buf + 8);
		if (seq >= count || seen[seq] || ts > t)
			continue;
		seen[seq] = 1;
		rtt[(*nrtt)++] = t - ts;
	}
}

static int do_client(const char *dst, uint16_t port, uint64_t count, uint64_t rate,
                     uint64_t size, uint64_t wait_ms, uint64_t limit)
{
	struct sockaddr_storage to;
	socklen_t tolen = parse_addr(dst, port, &to);

	if (!tolen)
		usage_error(usage, "--dst must be an IPv4 or IPv6 address");
	int fd = socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket:");
	if (connect(fd, (struct sockaddr *)&to, tolen) < 0)
		die("connect %s:", dst);
	set_rcvbuf(fd, 4 << 20);
	/* the default 50 us timer slack would blur the send schedule */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) < 0)
		die("PR_SET_TIMERSLACK:");

	uint8_t *seen = calloc(count ? count : 1, 1);
	uint64_t *rtt = malloc((count ? count : 1) * sizeof(*rtt));
	uint8_t *buf = malloc(size);
	if (!seen || !rtt || !buf)
		die("out of memory");
	memset(buf, 0x55, size);

	uint64_t start = now_ns(), deadline = start + limit, period = TOOL_NS_PER_SEC / rate;
	uint64_t sent = 0, nrtt = 0, next = start, errs = 0;
	while (sent < count && !tool_stop) {
		uint64_t t = now_ns();
		if (t >= deadline)
			break;
		if (t >= next) {
			put_u64(buf, sent);
			put_u64(buf + 8, now_ns());
			if (send(fd, buf, size, 0) < 0) {
				if (errno != ECONNREFUSED && errno != EPERM && errno != ENOBUFS &&
				    errno != EINTR)
					die("send:");
				errs++;
			}
			sent++;
			next += period;
			continue;
		}
		/* wait for an echo or the next send time, whichever is first;
		 * ppoll wakes as soon as an echo arrives, so RTTs are not rounded */
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t w = next - t;
		struct timespec ts = { .tv_sec = (time_t)(w / TOOL_NS_PER_SEC),
		                       .tv_nsec = (long)(w % TOOL_NS_PER_SEC) };
		int pr = ppoll(&pfd, 1, &ts, NULL);
		if (pr < 0 && errno != EINTR)
			die("ppoll:");
		if (pr > 0)
			drain(fd, seen, count, rtt, &nrtt);
	}
	uint64_t end = now_ns() + wait_ms * 1000000;
	if (end > deadline)
		end = deadline;
	while (nrtt < sent && !tool_stop) {
		uint64_t t = now_ns();
		if (t >= end)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)((end - t + 999999) / 1000000));
		if (pr < 0 && errno != EINTR)
			die("poll:");
		if (pr > 0)
			drain(fd, seen, count, rtt, &nrtt);
	}

	double mean = 0;
	for (uint64_t i = 0; i < nrtt; i++)
		mean += (double)rtt[i];
	mean = nrtt ? mean / (double)nrtt / 1e3 : 0;
	qsort(rtt, nrtt, sizeof(*rtt), cmp_u64);
	printf("{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"send_errors\":%" PRIu64 ",\"rtt_us_p50\":%.1f,\"rtt_us_p99\":%.1f"
	       ",\"rtt_us_max\":%.1f,\"rtt_us_mean\":%.1f}\n",
	       sent, nrtt, sent - nrtt, errs, (double)percentile(rtt, nrtt, 50) / 1e3,
	       (double)percentile(rtt, nrtt, 99) / 1e3,
	       nrtt ? (double)rtt[nrtt - 1] / 1e3 : 0.0, mean);
	if (fflush(stdout) == EOF)
		die("stdout:");
	if (close(fd) < 0)
		die("close:");
	free(seen);
	free(rtt);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'B' },
		{ "count", required_argument, NULL, 'n' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "ready", required_argument, NULL, 'R' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dst = NULL, *bind_addr = NULL, *ready = NULL;
	uint64_t port = 0, count = 1000, rate = 1000, size = 64, wait_ms = 500, limit = 0;
	int c;

	tool_name = "udpping";
	const char *mode = tool_mode(argc, argv, usage, "server or client?");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dst = optarg; break;
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'B': bind_addr = optarg; break;
		case 'n': count = parse_u64(usage, "--count", optarg, 1, 100000000); break;
		case 'r': rate = parse_u64(usage, "--rate", optarg, 1, 10000000); break;
		case 's': size = parse_u64(usage, "--size", optarg, TOOL_HDR_LEN, TOOL_MAX_DGRAM); break;
		case 'w': wait_ms = parse_u64(usage, "--wait-ms", optarg, 0, 60000); break;
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
	if (!strcmp(mode, "server"))
		return do_server(bind_addr, (uint16_t)port, ready,
		                 limit ? limit : 60ull * TOOL_NS_PER_SEC);
	if (!strcmp(mode, "client")) {
		if (!dst)
			usage_error(usage, "client needs --dst");
		return do_client(dst, (uint16_t)port, count, rate, size, wait_ms,
		                 limit ? limit : 30ull * TOOL_NS_PER_SEC);
	}
	usage_error(usage, "the first argument is server or client");
}

/* SPDX-License-Identifier: MIT */
/*
 * owdrecv - one-way delays of udpsend datagrams, stamped by the receiving
 * kernel (SO_TIMESTAMPNS: when the datagram reached the socket), so the
 * receiver's own wake-up latency is not part of the measure.
 *
 *   owdrecv --port P [--count N] [--idle-ms MS] [--time-limit SECONDS] [--ready FILE]
 *           [--dump FILE]
 *
 * The kernel stamp is CLOCK_REALTIME; the sender's (tool_common.h) is
 * CLOCK_MONOTONIC. The offset between the two clocks is read at start (the
 * tightest of a few reads), so delays are only meaningful on one machine and
 * over runs short enough for clock slewing not to matter. Prints one line:
 *
 *   {"received":R,"p50":..,"p90":..,"p99":..,"p999":..,"max":..,"min":..}  (microseconds)
 *
 * --dump FILE writes a line per datagram, in arrival order: its sequence
 * number, the sender's stamp and the one-way delay, both in ns (where in a
 * run the slow ones are).
 */
#include "tool_common.h"

#include <getopt.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

static const char usage[] =
	"owdrecv --port P [--count N] [--idle-ms MS] [--time-limit SECONDS] [--ready FILE]\n"
	"        [--dump FILE]";

static int64_t *lat;        /* one-way delays, ns */
static uint64_t *sent_at;   /* --dump: the sender's stamps, ns */
static uint64_t *seqs;      /* --dump: the datagrams' sequence numbers */
static size_t nlat, caplat;

static int64_t realtime_minus_monotonic(void)
{
	int64_t best = 0, width = INT64_MAX;

	for (int i = 0; i < 9; i++) {
		struct timespec a, r, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_REALTIME, &r);
		clock_gettime(CLOCK_MONOTONIC, &b);
		int64_t ma = (int64_t)a.tv_sec * TOOL_NS_PER_SEC + a.tv_nsec;
		int64_t mb = (int64_t)b.tv_sec * TOOL_NS_PER_SEC + b.tv_nsec;
		int64_t rr = (int64_t)r.tv_sec * TOOL_NS_PER_SEC + r.tv_nsec;
		if (mb - ma < width) {
			width = mb - ma;
			best = rr - (ma + mb) / 2;
		}
	}
	return best;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double pct(double p)
{
	size_t i = (size_t)(p / 100.0 * (double)nlat);

	if (i >= nlat)
		i = nlat - 1;
	return (double)lat[i] / 1e3;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "ready", required_argument, NULL, 'r' },
		{ "dump", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t port = 0, count = 0, idle_ms = 1000, limit_ns = 10ull * TOOL_NS_PER_SEC;
	const char *ready = NULL, *dump = NULL;
	int c, one = 1, bufsz = 8 << 20;

	tool_name = "owdrecv";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'n': count = parse_u64(usage, "--count", optarg, 0, 100000000); break;
		case 'i': idle_ms = parse_u64(usage, "--idle-ms", optarg, 1, 600000); break;
		case 't': limit_ns = parse_seconds(usage, "--time-limit", optarg); break;
		case 'r': ready = optarg; break;
		case 'd': dump = optarg; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: usage_error(usage, "unknown option");
		}
	}
	if (!port)
		usage_error(usage, "--port is required");

	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	int zero = 0;

	if (fd < 0)
		die("socket:");
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
		die("setsockopt:");
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind:");
	int64_t off = realtime_minus_monotonic();
	if (ready) {
		FILE *f = fopen(ready, "w");
		if (!f || fputs("ready\n", f) == EOF || fclose(f) == EOF)
			die("ready file %s:", ready);
	}

	static uint8_t bufs[TOOL_BURST][2048];
	static char ctls[TOOL_BURST][CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov[TOOL_BURST];
	struct mmsghdr msgs[TOOL_BURST];
	uint64_t start = now_ns(), last_rx = 0, received = 0;

	while (!count || received < count) {
		uint64_t t = now_ns();
		int wait_ms = 100;

		if (t - start >= limit_ns || (received && t - last_rx >= idle_ms * 1000000))
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, wait_ms);
		if (pr < 0 && errno != EINTR)
			die("poll:");
		if (pr <= 0)
			continue;
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < TOOL_BURST; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctls[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(ctls[i]);
		}
		int n = recvmmsg(fd, msgs, TOOL_BURST, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("recvmmsg:");
		}
		last_rx = now_ns();
		for (int i = 0; i < n; i++) {
			struct cmsghdr *cm;
			int64_t rx = -1;

			received++;
			for (cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
					rx = (int64_t)ts.tv_sec * TOOL_NS_PER_SEC + ts.tv_nsec - off;
				}
			}
			if (rx < 0 || msgs[i].msg_len < TOOL_HDR_LEN)
				continue;
			uint64_t sent = 0;
			for (int b = 7; b >= 0; b--)
				sent = sent << 8 | bufs[i][8 + b];
			if (nlat == caplat) {
				size_t nc = caplat ? caplat * 2 : 65536;
				int64_t *p = realloc(lat, nc * sizeof(*lat));
				uint64_t *q = p ? realloc(sent_at, nc * sizeof(*sent_at)) : NULL;
				uint64_t *r = q ? realloc(seqs, nc * sizeof(*seqs)) : NULL;
				if (!p || !q || !r)
					die("out of memory");
				lat = p;
				sent_at = q;
				seqs = r;
				caplat = nc;
			}
			sent_at[nlat] = sent;
			seqs[nlat] = 0;
			for (int b = 7; b >= 0; b--)
				seqs[nlat] = seqs[nlat] << 8 | bufs[i][b];
			lat[nlat++] = rx - (int64_t)sent;
		}
	}
	if (!nlat) {
		printf("{\"received\":%" PRIu64 "}\n", received);
		return 0;
	}
	if (dump) {
		FILE *f = fopen(dump, "w");

		for (size_t i = 0; f && i < nlat; i++)
			fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRId64 "\n", seqs[i], sent_at[i], lat[i]);
		if (!f || fclose(f) == EOF)
			die("dump file %s:", dump);
	}
	qsort(lat, nlat, sizeof(*lat), cmp_i64);
	printf("{\"received\":%" PRIu64 ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f"
	       ",\"max\":%.1f,\"min\":%.1f}\n", received, pct(50), pct(90), pct(99), pct(99.9),
	       (double)lat[nlat - 1] / 1e3, (double)lat[0] / 1e3);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * udprecv - receive sequenced UDP datagrams (from udpsend) and report.
 *
 *   udprecv --port P [--bind ADDR] [--count N] [--idle-ms MS]
 *           [--time-limit SECONDS] [--ready FILE] [--dump-first FILE]
 *           [--seqs FILE]
 *
 * Binds [::]:P (dual stack, so IPv4 arrives too) unless --bind is given.
 * Stops after --count datagrams, after --idle-ms of silence once the first
 * datagram arrived (default 1000), at --time-limit (default 10 s), or on
 * SIGINT/SIGTERM. --ready FILE is written once the socket is bound.
 * Sequence numbers are expected to start at 0. Prints one line:
 *
 *   {"received":R,"unique":U,"duplicates":D,"out_of_order":O,"missing":M,
 *    "first_seq":F,"last_seq":L,"max_seq":X,"bytes":B,"short":S,
 *    "lat_us_p50":..,"lat_us_p99":..,"lat_us_max":..}
 *
 * out_of_order counts first copies that arrived after a higher sequence;
 * missing = max(count, max_seq + 1) - unique. Latency is the one-way delay
 * from the sender's CLOCK_MONOTONIC stamp to the return of recvmmsg (same
 * machine only); it is left out when no datagram carried a plausible stamp.
 * --dump-first writes the first payload as hex, --seqs every sequence number
 * in arrival order, one per line.
 */
#include "tool_common.h"

#include <getopt.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

static const char usage[] =
	"udprecv --port P [--bind ADDR] [--count N] [--idle-ms MS] [--time-limit SECONDS]\n"
	"        [--ready FILE] [--dump-first FILE] [--seqs FILE]";

enum {
	SEQ_LIMIT   = 1 << 28,            /* seqs above this are not tracked in the bitmap */
	LAT_MAX_NS  = 60ull * 1000000000, /* stamps claiming more than this are not ours */
};

/* growable arrays: tools may allocate, the daemon may not */
static uint8_t *seen;        /* bitmap of sequence numbers */
static size_t seen_bytes;
static uint64_t *lat;        /* one-way delays, ns */
static size_t lat_n, lat_cap;

static int seen_test_and_set(uint64_t seq)
{
	size_t byte = (size_t)(seq >> 3);

	if (byte >= seen_bytes) {
		size_t nb = seen_bytes ? seen_bytes : 4096;
		while (nb <= byte)
			nb *= 2;
		uint8_t *p = realloc(seen, nb);
		if (!p)
			die("out of memory");
		memset(p + seen_bytes, 0, nb - seen_bytes);
		seen = p;
		seen_bytes = nb;
	}
	uint8_t bit = (uint8_t)(1u << (seq & 7));
	int was = (seen[byte] & bit) != 0;
	seen[byte] |= bit;
	return was;
}

static void lat_add(uint64_t d)
{
	if (lat_n == lat_cap) {
		size_t nc = lat_cap ? lat_cap * 2 : 65536;
		uint64_t *p = realloc(lat, nc * sizeof(*p));
		if (!p)
			die("out of memory");
		lat = p;
		lat_cap = nc;
	}
	lat[lat_n++] = d;
}

static void dump_hex(const char *file, const uint8_t *p, size_t n)
{
	FILE *f = fopen(file, "w");

	if (!f)
		die("open %s:", file);
	for (size_t i = 0; i < n; i++)
		if (fprintf(f, "%02x", p[i]) < 0)
			die("write %s:", file);
	if (fputc('\n', f) == EOF || fclose(f) == EOF)
		die("write %s:", file);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'B' },
		{ "count", required_argument, NULL, 'n' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "ready", required_argument, NULL, 'R' },
		{ "dump-first", required_argument, NULL, 'D' },
		{ "seqs", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bind_addr = NULL, *ready = NULL, *dump_first = NULL, *seqs_file = NULL;
	uint64_t port = 0, count = 0, idle_ms = 1000, limit_ns = 10ull * TOOL_NS_PER_SEC;
	int c;

	tool_name = "udprecv";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'B': bind_addr = optarg; break;
		case 'n': count = parse_u64(usage, "--count", optarg, 0, SEQ_LIMIT); break;
		case 'i': idle_ms = parse_u64(usage, "--idle-ms", optarg, 1, 3600000); break;
		case 't': limit_ns = parse_seconds(usage, "--time-limit", optarg); break;
		case 'R': ready = optarg; break;
		case 'D': dump_first = optarg; break;
		case 'Q': seqs_file = optarg; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: usage_error(usage, "unknown option");
		}
	}
	if (optind != argc)
		usage_error(usage, "unexpected argument");
	if (!port)
		usage_error(usage, "--port is required");

	FILE *seqs = NULL;
	if (seqs_file && !(seqs = fopen(seqs_file, "w")))
		die("open %s:", seqs_file);

	int fd = bind_any(SOCK_DGRAM, bind_addr, (uint16_t)port);
	/* room for a whole test burst if this process is descheduled for a while */
	set_rcvbuf(fd, 32 << 20);
	catch_stop_signals();
	write_ready(ready);

	static uint8_t bufs[TOOL_BURST][TOOL_MAX_DGRAM + 1];
	struct iovec iov[TOOL_BURST];
	struct mmsghdr msgs[TOOL_BURST];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < TOOL_BURST; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	uint64_t received = 0, unique = 0, dups = 0, ooo = 0, bytes = 0, shortd = 0;
	uint64_t first_seq = 0, last_seq = 0, max_seq = 0;
	int any_seq = 0;
	uint64_t start = now_ns(), deadline = start + limit_ns, last_rx = 0;

	while (!tool_stop && (!count || received < count)) {
		uint64_t t = now_ns();
		if (t >= deadline)
			break;
		uint64_t wait_ns = deadline - t;
		if (received) {
			uint64_t idle_end = last_rx + idle_ms * 1000000;
			if (t >= idle_end)
				break;
			if (idle_end - t < wait_ns)
				wait_ns = idle_end - t;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)((wait_ns + 999999) / 1000000));
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			die("poll:");
		}
		if (pr == 0)
			continue;
		int n = recvmmsg(fd, msgs, TOOL_BURST, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("recvmmsg:");
		}
		last_rx = now_ns();
		for (int i = 0; i < n; i++) {
			size_t len = msgs[i].msg_len;
			const uint8_t *p = bufs[i];
			received++;
			bytes += len;
			if (received == 1 && dump_first)
				dump_hex(dump_first, p, len);
			if (len < TOOL_HDR_LEN) {
				shortd++;
				continue;
			}
			uint64_t seq = get_u64(p), ts = get_u64(p + 8);
			if (seqs && fprintf(seqs, "%" PRIu64 "\n", seq) < 0)
				die("write %s:", seqs_file);
			if (ts && ts <= last_rx && last_rx - ts < LAT_MAX_NS)
				lat_add(last_rx - ts);
			if (received - shortd == 1)
				first_seq = seq;
			last_seq = seq;
			if (seq >= SEQ_LIMIT) {
				shortd++;   /* not one of ours: counted with the malformed */
				continue;
			}
			if (seen_test_and_set(seq)) {
				dups++;
				continue;
			}
			unique++;
			if (any_seq && seq < max_seq)
				ooo++;
			if (!any_seq || seq > max_seq)
				max_seq = seq;
			any_seq = 1;
		}
	}

	uint64_t expect = any_seq ? max_seq + 1 : 0;
	if (count > expect)
		expect = count;
	printf("{\"received\":%" PRIu64 ",\"unique\":%" PRIu64 ",\"duplicates\":%" PRIu64
	       ",\"out_of_order\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"first_seq\":%" PRIu64
	       ",\"last_seq\":%" PRIu64 ",\"max_seq\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"short\":%" PRIu64,
	       received, unique, dups, ooo, expect - unique, first_seq, last_seq, max_seq,
	       bytes, shortd);
	if (lat_n) {
		qsort(lat, lat_n, sizeof(*lat), cmp_u64);
		printf(",\"lat_us_p50\":%.1f,\"lat_us_p99\":%.1f,\"lat_us_max\":%.1f",
		       (double)percentile(lat, lat_n, 50) / 1e3,
		       (double)percentile(lat, lat_n, 99) / 1e3, (double)lat[lat_n - 1] / 1e3);
	}
	printf(",\"elapsed_s\":%.3f}\n", (double)(now_ns() - start) / 1e9);
	if (fflush(stdout) == EOF)
		die("stdout:");
	if (seqs && fclose(seqs) == EOF)
		die("write %s:", seqs_file);
	if (close(fd) < 0)
		die("close:");
	free(seen);
	free(lat);
	return 0;
}

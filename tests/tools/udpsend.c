/* SPDX-License-Identifier: MIT */
/*
 * udpsend - send N sequenced UDP datagrams, optionally at a fixed rate.
 *
 *   udpsend --dst ADDR --port P [--count N] [--rate PPS] [--size BYTES]
 *           [--time-limit SECONDS] [--payload-byte X] [--start-seq S]
 *           [--src-port P]
 *
 * Each payload is the 16-byte header of tool_common.h (sequence, send time)
 * followed by filler bytes up to --size. --rate 0 sends as fast as the
 * kernel takes them, in sendmmsg bursts of TOOL_BURST. The run ends after
 * --count datagrams or --time-limit seconds (default 10), whichever comes
 * first. Prints one line:
 *   {"sent":N,"eperm":E,"enobufs":B,"elapsed_s":T,"pps":R}
 * eperm counts datagrams a firewall dropped on the way out (the kernel
 * reports an OUTPUT-hook drop to the sender as EPERM); they are not "sent".
 */
#include "tool_common.h"

#include <getopt.h>
#include <sys/uio.h>
#include <unistd.h>

static const char usage[] =
	"udpsend --dst ADDR --port P [--count N] [--rate PPS] [--size BYTES]\n"
	"        [--time-limit SECONDS] [--payload-byte X] [--start-seq S] [--src-port P]";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "payload-byte", required_argument, NULL, 'b' },
		{ "start-seq", required_argument, NULL, 'S' },
		{ "src-port", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dst = NULL;
	uint64_t port = 0, count = 1000, rate = 0, size = 64, seq0 = 0, src_port = 0;
	uint64_t limit_ns = 10ull * TOOL_NS_PER_SEC, fill = 0x55;
	int c;

	tool_name = "udpsend";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dst = optarg; break;
		case 'p': port = parse_u64(usage, "--port", optarg, 1, 65535); break;
		case 'n': count = parse_u64(usage, "--count", optarg, 0, UINT64_MAX / 2); break;
		case 'r': rate = parse_u64(usage, "--rate", optarg, 0, 100000000); break;
		case 's': size = parse_u64(usage, "--size", optarg, TOOL_HDR_LEN, TOOL_MAX_DGRAM); break;
		case 't': limit_ns = parse_seconds(usage, "--time-limit", optarg); break;
		case 'b': fill = parse_u64(usage, "--payload-byte", optarg, 0, 255); break;
		case 'S': seq0 = parse_u64(usage, "--start-seq", optarg, 0, UINT64_MAX / 2); break;
		case 'P': src_port = parse_u64(usage, "--src-port", optarg, 1, 65535); break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: usage_error(usage, "unknown option");
		}
	}
	if (optind != argc)
		usage_error(usage, "unexpected argument");
	if (!dst || !port)
		usage_error(usage, "--dst and --port are required");

	struct sockaddr_storage to;
	socklen_t tolen = parse_addr(dst, (uint16_t)port, &to);
	if (!tolen)
		usage_error(usage, "--dst must be an IPv4 or IPv6 address");

	int fd = socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket:");
	if (src_port) {
		struct sockaddr_storage from;
		socklen_t flen = parse_addr(to.ss_family == AF_INET ? "0.0.0.0" : "::",
		                            (uint16_t)src_port, &from);
		if (bind(fd, (struct sockaddr *)&from, flen) < 0)
			die("bind source port %" PRIu64 ":", src_port);
	}
	int sndbuf = 4 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		die("SO_SNDBUF:");

	/* one payload buffer per burst slot, filled once; only the header changes */
	uint8_t *bufs = malloc((size_t)size * TOOL_BURST);
	if (!bufs)
		die("out of memory");
	memset(bufs, (int)fill, (size_t)size * TOOL_BURST);
	struct iovec iov[TOOL_BURST];
	struct mmsghdr msgs[TOOL_BURST];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < TOOL_BURST; i++) {
		iov[i].iov_base = bufs + (size_t)i * size;
		iov[i].iov_len = (size_t)size;
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = tolen;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	catch_stop_signals();
	uint64_t sent = 0, eperm = 0, enobufs = 0, done = 0;
	uint64_t start = now_ns(), deadline = start + limit_ns, t = start;

	while (done < count && !tool_stop && t < deadline) {
		uint64_t want = count - done;
		if (want > TOOL_BURST)
			want = TOOL_BURST;
		if (rate) {
			/* how many are due by now; if none, sleep until the next one */
			uint64_t due = (uint64_t)((double)(t - start) * (double)rate / 1e9) + 1;
			if (due <= done) {
				uint64_t next = start + (uint64_t)((double)done * 1e9 / (double)rate);
				sleep_until_ns(next < deadline ? next : deadline);
				t = now_ns();
				continue;
			}
			if (want > due - done)
				want = due - done;
		}
		for (uint64_t i = 0; i < want; i++) {
			put_u64(bufs + i * size, seq0 + done + i);
			put_u64(bufs + i * size + 8, t);
		}
		int n = sendmmsg(fd, msgs, (unsigned)want, 0);
		if (n < 0) {
			if (errno == EPERM) {
				/* the first datagram was dropped by a firewall on OUTPUT */
				eperm++;
				done++;
			} else if (errno == ENOBUFS || errno == EAGAIN) {
				enobufs++;
				sleep_until_ns(now_ns() + 50000);
			} else if (errno != EINTR) {
				die("sendmmsg:");
			}
		} else {
			sent += (uint64_t)n;
			done += (uint64_t)n;
		}
		t = now_ns();
	}
	double el = (double)(now_ns() - start) / 1e9;
	printf("{\"sent\":%" PRIu64 ",\"eperm\":%" PRIu64 ",\"enobufs\":%" PRIu64
	       ",\"elapsed_s\":%.3f,\"pps\":%.0f}\n",
	       sent, eperm, enobufs, el, el > 0 ? (double)sent / el : 0.0);
	if (close(fd) < 0)
		die("close:");
	free(bufs);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * bare_nfq.h - what the two bare-C NFQUEUE accept loops share: command
 * line, queue setup, signals and the report. Each loop (bare_nfq_simple.c,
 * bare_nfq_batched.c) is one program that includes this header.
 *
 * The queue is configured exactly as luadivert's core does it (core/nfq.c):
 * NETLINK_NO_ENOBUFS, SO_RCVBUFFORCE sized for the queue length, whole
 * packets copied (NFQNL_COPY_PACKET, 0xffff bytes) and NFQA_CFG_F_GSO, so
 * that the benchmark compares the loops and not the settings.
 *
 * Report (stdout, one line, at exit and on SIGUSR1):
 *   {"packets":N,"batches":B,"mean_batch":M,"max_batch":X,"recv_errors":E,
 *    "user_s":U,"sys_s":S,"cpu_ns_per_pkt":C}
 */
#ifndef LD_BARE_NFQ_H
#define LD_BARE_NFQ_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

enum {
	BARE_COPY_RANGE   = 0xffff,          /* whole packets, like the engine */
	BARE_SLOT         = 65536 + 8192,    /* one netlink message: packet + attributes */
	BARE_RCVBUF_PER_PKT = 2048,          /* socket buffer per queued packet */
	BARE_RCVBUF_MIN   = 4 << 20,
	BARE_RCVBUF_MAX   = 256 << 20,
	BARE_SNDBUF       = 8 << 20,
	BARE_MAXLEN_DEF   = 1024,            /* the kernel's default queue length */
};

struct bare {
	struct mnl_socket *nl;
	int fd;
	uint32_t portid;
	uint32_t queue;
	uint32_t seq;
	uint64_t packets, batches, max_batch, recv_errors;
};

static const char *bare_name = "bare_nfq";
static volatile sig_atomic_t bare_stop, bare_report;

static inline void bare_on_signal(int sig)
{
	if (sig == SIGUSR1)
		bare_report = 1;
	else
		bare_stop = 1;
}

static inline void __attribute__((noreturn)) bare_die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", bare_name, what, strerror(errno));
	exit(1);
}

/* bare_config - send one NFQNL_MSG_CONFIG with an ACK request, check the reply. */
static inline void bare_config(struct bare *b, struct nlmsghdr *nlh, const char *what)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = ++b->seq;
	if (mnl_socket_sendto(b->nl, nlh, nlh->nlmsg_len) < 0)
		bare_die(what);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(b->nl, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			bare_die(what);
		}
		int rc = mnl_cb_run(buf, (size_t)n, b->seq, b->portid, NULL, NULL);
		if (rc < 0) {
			if (errno == EBUSY)
				fprintf(stderr, "%s: queue %u is bound by another process\n",
				        bare_name, b->queue);
			bare_die(what);
		}
		if (rc == MNL_CB_STOP)
			return;
	}
}

static inline void usage(void)
{
	fprintf(stderr, "usage: %s --queue N [--maxlen N]\n"
	        "  accept every packet of NFQUEUE N until SIGINT/SIGTERM; SIGUSR1 prints counters\n",
	        bare_name);
	exit(2);
}

/* bare_open - parse --queue/--maxlen, bind the queue, configure it like the engine. */
static inline void bare_open(struct bare *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "maxlen", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long queue = 0, maxlen = BARE_MAXLEN_DEF;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "q:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			queue = strtoul(optarg, &end, 10);
			if (*end || !*optarg || queue > 65535)
				usage();
			break;
		case 'm':
			maxlen = strtoul(optarg, &end, 10);
			if (*end || !*optarg || maxlen < 1 || maxlen > 1000000)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	memset(b, 0, sizeof(*b));
	b->queue = (uint32_t)queue;
	b->seq = (uint32_t)time(NULL);
	b->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!b->nl)
		bare_die("netlink socket");
	if (mnl_socket_bind(b->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		bare_die("netlink bind");
	b->fd = mnl_socket_get_fd(b->nl);
	b->portid = mnl_socket_get_portid(b->nl);

	int one = 1, sndbuf = BARE_SNDBUF;
	uint64_t want = (uint64_t)maxlen * BARE_RCVBUF_PER_PKT;
	int rcvbuf = (int)(want < BARE_RCVBUF_MIN ? BARE_RCVBUF_MIN :
	                   want > BARE_RCVBUF_MAX ? BARE_RCVBUF_MAX : want);
	if (setsockopt(b->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		bare_die("SO_RCVBUFFORCE");
	if (setsockopt(b->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		bare_die("SO_SNDBUFFORCE");
	if (setsockopt(b->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
		bare_die("NETLINK_NO_ENOBUFS");

	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, b->queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
	bare_config(b, nlh, "bind queue");

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, b->queue);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, BARE_COPY_RANGE);
	bare_config(b, nlh, "copy mode");

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, b->queue);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, (uint32_t)maxlen);
	bare_config(b, nlh, "queue length");

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, b->queue);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
	bare_config(b, nlh, "GSO flag");

	/* no SA_RESTART: a blocking receive returns EINTR so the loop sees the flag */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bare_on_signal;
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGUSR1, &sa, NULL) < 0)
		bare_die("sigaction");
	fprintf(stderr, "%s: queue %u bound\n", bare_name, b->queue);
}

/* bare_print - the report line (cumulative counters, CPU time of the process). */
static inline void bare_print(const struct bare *b)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		bare_die("getrusage");
	double us = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	double sy = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("{\"packets\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"mean_batch\":%.2f"
	       ",\"max_batch\":%" PRIu64 ",\"recv_errors\":%" PRIu64
	       ",\"user_s\":%.3f,\"sys_s\":%.3f,\"cpu_ns_per_pkt\":%.0f}\n",
	       b->packets, b->batches,
	       b->batches ? (double)b->packets / (double)b->batches : 0.0, b->max_batch,
	       b->recv_errors, us, sy, b->packets ? (us + sy) * 1e9 / (double)b->packets : 0.0);
	if (fflush(stdout) == EOF)
		bare_die("stdout");
}

/* bare_close - report, unbind, close. */
static inline int bare_close(struct bare *b)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, b->queue);

	bare_print(b);
	/* packets still queued are dropped by the kernel when the queue goes */
	nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
	if (mnl_socket_sendto(b->nl, nlh, nlh->nlmsg_len) < 0)
		bare_die("unbind");
	if (mnl_socket_close(b->nl) < 0)
		bare_die("close");
	return 0;
}

/* bare_packet_id - the packet id of one NFQNL_MSG_PACKET, or -1 if it has none. */
static inline int64_t bare_packet_id(const struct nlmsghdr *nlh)
{
	const struct nlattr *a;

	/* the kernel puts NFQA_PACKET_HDR first: stop at it, skip the rest */
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == NFQA_PACKET_HDR &&
		    mnl_attr_get_payload_len(a) >= sizeof(struct nfqnl_msg_packet_hdr)) {
			const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(a);
			return ntohl(ph->packet_id);
		}
	}
	return -1;
}

#endif /* LD_BARE_NFQ_H */

// SPDX-License-Identifier: MIT
/*
 * rules_driver - exercise core/rules*.c the way `luadivert run` does, with a
 * tiny NFQUEUE consumer in place of the Lua engine.
 *
 *   rules_driver run --queue N [--filter EXPR] [--hook H]... [--family 4|6]
 *                [--fail-closed] [--backend auto|nft|legacy] [--skip-mark X]
 *                [--consume drop|accept|none] [--log FILE] [--time-limit S]
 *   rules_driver rules list|cleanup|print ...     (same as `luadivert rules ...`)
 *
 * run: compile the filter (exit 2 on error, nothing touched), take the
 * queue's lock (exit 1 if held), bind the queue (unless --consume none),
 * install the rules, print "ready" on stdout, then give every packet the
 * --consume verdict (default drop) and, with --log, write one line per
 * packet ("hook=output v=4 proto=17 sport=.. dport=.. mark=0x.. len=..").
 * SIGTERM/SIGINT or --time-limit (default 60 s) end it: rules removed,
 * queue unbound, lock released, exit 0. kill -9 leaves the rules behind,
 * which is what the cleanup tests need.
 */
#include "../../core/cli.c"
#include "../../core/rules.c"
#include "../../core/rules_compile.c"
#include "../../core/rules_save.c"
#include "../../core/rules_cli.c"
#include "../../core/rules_exec.c"
#include "../../core/rules_lock.c"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

enum {
	BUF_SIZE = 0xffff + 4096,
	POLL_MS = 100,
	CONSUME_NONE = -1,
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char driver_usage[] =
	"usage: rules_driver run --queue N [--filter EXPR] [--hook H]... [--family 4|6]\n"
	"                        [--fail-closed] [--backend auto|nft|legacy] [--skip-mark X]\n"
	"                        [--consume drop|accept|none] [--log FILE] [--time-limit S]\n"
	"       rules_driver rules list|cleanup|print ...\n";

struct consumer {
	struct mnl_socket *nl;
	uint32_t portid;
	uint16_t queue;
	int verdict;
	FILE *log;
	unsigned long packets;
	char *buf;
};

static int send_cfg(struct consumer *c, uint8_t cmd, int params, char *err, size_t errlen)
{
	struct nlmsghdr *nlh = nfq_nlmsg_put(c->buf, NFQNL_MSG_CONFIG, c->queue);
	ssize_t n;

	if (params)
		nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
	else
		nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, cmd);
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0) {
		snprintf(err, errlen, "netlink send: %s", strerror(errno));
		return -1;
	}
	n = mnl_socket_recvfrom(c->nl, c->buf, BUF_SIZE);
	if (n < 0 || mnl_cb_run(c->buf, (size_t)n, 0, c->portid, NULL, NULL) < 0) {
		snprintf(err, errlen, "binding queue %u: %s", (unsigned)c->queue, strerror(errno));
		return -1;
	}
	return 0;
}

static int consumer_open(struct consumer *c, char *err, size_t errlen)
{
	c->buf = malloc(BUF_SIZE);
	if (!c->buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		return -1;
	}
	c->portid = mnl_socket_get_portid(c->nl);
	if (send_cfg(c, NFQNL_CFG_CMD_BIND, 0, err, errlen) < 0 ||
	    send_cfg(c, 0, 1, err, errlen) < 0)
		return -1;
	return 0;
}

static void log_packet(struct consumer *c, uint8_t hook, const uint8_t *p, uint32_t len,
		       uint32_t mark)
{
	static const char *const hooks[] = { "prerouting", "input", "forward", "output",
					     "postrouting" };
	unsigned v = len ? p[0] >> 4 : 0, proto = 0, sport = 0, dport = 0, l4 = 0;

	if (!c->log)
		return;
	if (v == 4 && len >= 20) {
		proto = p[9];
		l4 = (p[0] & 15u) * 4;
	} else if (v == 6 && len >= 40) {
		proto = p[6];
		l4 = 40;
	}
	if ((proto == 6 || proto == 17) && l4 && len >= l4 + 4) {
		sport = (unsigned)p[l4] << 8 | p[l4 + 1];
		dport = (unsigned)p[l4 + 2] << 8 | p[l4 + 3];
	}
	fprintf(c->log, "hook=%s v=%u proto=%u sport=%u dport=%u mark=0x%x len=%u\n",
		hook < 5 ? hooks[hook] : "?", v, proto, sport, dport, mark, len);
	fflush(c->log);
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	struct consumer *c = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	struct nlmsghdr *out;
	uint32_t id, mark = 0;
	char vbuf[MNL_SOCKET_BUFFER_SIZE];

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	if (attr[NFQA_MARK])
		mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
	if (attr[NFQA_PAYLOAD])
		log_packet(c, ph->hook, mnl_attr_get_payload(attr[NFQA_PAYLOAD]),
			   mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]), mark);
	c->packets++;
	out = nfq_nlmsg_put(vbuf, NFQNL_MSG_VERDICT, c->queue);
	nfq_nlmsg_verdict_put(out, id, c->verdict);
	if (mnl_socket_sendto(c->nl, out, out->nlmsg_len) < 0)
		fprintf(stderr, "rules_driver: verdict: %s\n", strerror(errno));
	return MNL_CB_OK;
}

static int consume(struct consumer *c)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(c->nl), .events = POLLIN };
	int r = poll(&pfd, 1, POLL_MS);
	ssize_t n;

	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	n = mnl_socket_recvfrom(c->nl, c->buf, BUF_SIZE);
	if (n < 0)
		return errno == ENOBUFS || errno == EINTR ? 0 : -1;
	if (mnl_cb_run(c->buf, (size_t)n, 0, c->portid, on_packet, c) < 0 && errno != ENOBUFS)
		fprintf(stderr, "rules_driver: netlink: %s\n", strerror(errno));
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "filter", required_argument, NULL, 'f' },
		{ "hook", required_argument, NULL, 'H' },
		{ "family", required_argument, NULL, '4' },
		{ "fail-closed", no_argument, NULL, 'c' },
		{ "backend", required_argument, NULL, 'b' },
		{ "skip-mark", required_argument, NULL, 'm' },
		{ "consume", required_argument, NULL, 'C' },
		{ "log", required_argument, NULL, 'l' },
		{ "time-limit", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_rules_cfg cfg;
	struct consumer con = { 0 };
	struct sigaction sa;
	char err[2048];
	unsigned hooks = 0;
	unsigned long v;
	double limit = 60, t0;
	int c, lock_fd, rc = 0;

	ld_rules_cfg_init(&cfg, 0);
	con.verdict = NF_DROP;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			if (parse_uint(optarg, 65535, &v) < 0)
				goto usage;
			cfg.queue = (uint16_t)v;
			break;
		case 'f': cfg.filter = optarg; break;
		case 'H':
			if (ld_rules_parse_hook(optarg, &hooks) < 0)
				goto usage;
			break;
		case '4': cfg.family = atoi(optarg); break;
		case 'c': cfg.fail_closed = 1; break;
		case 'b':
			if (ld_rules_parse_backend(optarg, &cfg.backend) < 0)
				goto usage;
			break;
		case 'm':
			if (parse_uint(optarg, 0xffffffffUL, &v) < 0)
				goto usage;
			cfg.skip_mark = (uint32_t)v;
			break;
		case 'C':
			if (!strcmp(optarg, "drop"))
				con.verdict = NF_DROP;
			else if (!strcmp(optarg, "accept"))
				con.verdict = NF_ACCEPT;
			else if (!strcmp(optarg, "none"))
				con.verdict = CONSUME_NONE;
			else
				goto usage;
			break;
		case 'l':
			con.log = fopen(optarg, "we");
			if (!con.log) {
				fprintf(stderr, "rules_driver: %s: %s\n", optarg, strerror(errno));
				return 1;
			}
			break;
		case 't': limit = atof(optarg); break;
		default:
			goto usage;
		}
	}
	if (hooks)
		cfg.hooks = hooks;
	con.queue = cfg.queue;

	/* 1. the filter: a mistake exits 2 before anything is touched */
	if (ld_rules_compile(&cfg, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "rules_driver: %s\n", err);
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;   /* no SA_RESTART: poll returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
		perror("rules_driver: sigaction");
		return 1;
	}
	/* 2. one instance per queue; on failure the rules are NOT ours to remove */
	lock_fd = ld_rules_lock(cfg.queue, err, sizeof err);
	if (lock_fd < 0) {
		fprintf(stderr, "rules_driver: %s\n", err);
		return 1;
	}
	/* 3. bind before installing: with --fail-closed nothing drops in between */
	if (con.verdict != CONSUME_NONE && consumer_open(&con, err, sizeof err) < 0) {
		fprintf(stderr, "rules_driver: %s\n", err);
		rc = 1;
		goto unlock;
	}
	/* 4. install */
	if (ld_rules_install(&cfg, err, sizeof err) < 0) {
		fprintf(stderr, "rules_driver: installing rules: %s\n", err);
		rc = 1;
		goto unbind;
	}
	printf("ready\n");
	fflush(stdout);
	t0 = now_s();
	while (!stop && now_s() - t0 < limit) {
		if (con.verdict == CONSUME_NONE) {
			struct timespec ts = { 0, POLL_MS * 1000000L };

			nanosleep(&ts, NULL);
		} else if (consume(&con) < 0) {
			fprintf(stderr, "rules_driver: receive: %s\n", strerror(errno));
			rc = 1;
			break;
		}
	}
	/* 5. every exit path: rules out before the queue goes */
	if (ld_rules_remove(&cfg, err, sizeof err) < 0) {
		fprintf(stderr, "rules_driver: removing rules: %s\n", err);
		rc = 1;
	}
	fprintf(stderr, "rules_driver: %lu packets\n", con.packets);
unbind:
	if (con.nl)
		mnl_socket_close(con.nl);
unlock:
	free(con.buf);
	if (con.log)
		fclose(con.log);
	ld_rules_unlock(lock_fd, cfg.queue);
	return rc;
usage:
	fputs(driver_usage, stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "rules"))
		return ld_cmd_rules(argc - 1, argv + 1);
	fputs(driver_usage, argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
	return 2;
}

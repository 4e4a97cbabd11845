/* SPDX-License-Identifier: MIT */
/*
 * divert_nat - a natd-like port redirector, written for FreeBSD's divert(4)
 * and built unchanged on Linux with <luadivert/divert.h> and
 * -lluadivert-divert.
 *
 *   divert_nat -p DIVERTPORT -r PORT:NEWPORT [-D PORT] [-v]
 *
 * Incoming TCP/UDP packets for PORT are rewritten to NEWPORT (and the
 * replies leaving from NEWPORT back to PORT), like natd -redirect_port;
 * the checksums are updated incrementally (RFC 1624), as libalias does.
 * Incoming packets for the -D port are never written back: they are
 * dropped, like natd -deny_incoming. Everything else is written back
 * unchanged. -v prints one line per packet: direction, interface and
 * address from the sockaddr recvfrom filled in, and the verdict.
 *
 * Linux: luadivert rules add --queue DIVERTPORT --hook input,output --filter udp
 * FreeBSD: ipfw add divert DIVERTPORT udp from any to any
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <luadivert/divert.h>

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

/* RFC 1624: HC' = ~(~HC + ~m + m') for one 16-bit word changing m -> m'. */
static void cksum_adjust(u_short *sum, u_short old, u_short new)
{
	u_int s = (u_short)~ntohs(*sum) + (u_short)~ntohs(old) + ntohs(new);

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	*sum = htons((u_short)~s);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t slen;
	u_char buf[IP_MAXPACKET];
	int fd, c, verbose = 0, divport = -1, port = -1, newport = -1, deny = -1;
	struct sigaction sa;

	while ((c = getopt(argc, argv, "p:r:D:v")) != -1) {
		switch (c) {
		case 'p': divport = atoi(optarg); break;
		case 'r':
			if (sscanf(optarg, "%d:%d", &port, &newport) != 2)
				errx(2, "-r PORT:NEWPORT");
			break;
		case 'D': deny = atoi(optarg); break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: divert_nat -p DIVERTPORT -r PORT:NEWPORT [-D PORT] [-v]\n");
			return 2;
		}
	}
	if (divport < 0 || port < 0)
		errx(2, "usage: divert_nat -p DIVERTPORT -r PORT:NEWPORT [-D PORT] [-v]");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;     /* no SA_RESTART: recvfrom returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT);
	if (fd == -1)
		err(1, "socket");
	memset(&sin, 0, sizeof(sin));
	sin.sin_len = sizeof(sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(divport);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "bind divert port %d", divport);
	if (verbose)
		printf("ready\n");

	while (!quit) {
		struct ip *ip = (struct ip *)buf;
		u_short *sport, *dport, *sum = NULL;
		const char *what = "pass";
		int n, inbound, hl;

		slen = sizeof(sin);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "recvfrom");
		}
		inbound = sin.sin_addr.s_addr != INADDR_ANY;
		hl = ip->ip_hl << 2;
		if (ip->ip_v == 4 && n >= hl + 8 && (ip->ip_p == IPPROTO_UDP || ip->ip_p == IPPROTO_TCP)) {
			sport = (u_short *)(buf + hl);
			dport = sport + 1;
			if (ip->ip_p == IPPROTO_UDP)
				sum = &((struct udphdr *)(buf + hl))->uh_sum;
			else if (n >= hl + 20)
				sum = &((struct tcphdr *)(buf + hl))->th_sum;
			if (inbound && deny >= 0 && ntohs(*dport) == deny) {
				what = "deny";
			} else if (inbound && ntohs(*dport) == port) {
				if (sum && *sum)
					cksum_adjust(sum, *dport, htons(newport));
				*dport = htons(newport);
				what = "redirect";
			} else if (!inbound && ntohs(*sport) == newport) {
				if (sum && *sum)
					cksum_adjust(sum, *sport, htons(port));
				*sport = htons(port);
				what = "unredirect";
			}
		}
		if (verbose)
			printf("%s %.7s %s %s len %d\n", inbound ? "in" : "out",
			       sin.sin_zero[0] ? (char *)sin.sin_zero : "-",
			       inet_ntoa(sin.sin_addr), what, n);
		if (!strcmp(what, "deny"))
			continue;          /* not written back: the packet is gone */
		if (sendto(fd, buf, n, 0, (struct sockaddr *)&sin, slen) == -1)
			warn("sendto");
	}
	close(fd);
	return 0;
}

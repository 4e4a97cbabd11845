/* SPDX-License-Identifier: MIT */
/*
 * divert_rst - refuse TCP connections with a crafted RST, written for
 * FreeBSD's divert(4); builds unchanged on Linux with <luadivert/divert.h>
 * and -lluadivert-divert.
 *
 *   divert_rst -p DIVERTPORT [-v]
 *
 * A diverted SYN is read and never written back (it is gone); instead the
 * program builds the RST|ACK the server would have sent and writes that:
 * a packet it never read, which the divert socket sends as a new packet.
 * An inbound SYN is answered outbound (sin_addr INADDR_ANY); an outbound
 * one is answered inbound (sin_addr = the local address it came from).
 * Other TCP packets are written back unchanged.
 *
 * Linux: luadivert rules add --queue DIVERTPORT --hook input --filter 'tcp dst port 9100'
 * FreeBSD: ipfw add divert DIVERTPORT tcp from any to me 9100 setup
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/ip.h>
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

/* The Internet checksum over @len bytes, added to @sum. */
static u_int sum16(const void *p, int len, u_int sum)
{
	const u_char *b = p;

	for (; len > 1; len -= 2, b += 2)
		sum += (u_int)b[0] << 8 | b[1];
	if (len)
		sum += (u_int)b[0] << 8;
	return sum;
}

static u_short fold(u_int sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((u_short)~sum);
}

/* Build in @out the RST|ACK answering the SYN in @syn. Return its length. */
static int make_rst(const struct ip *syn, const struct tcphdr *th, u_char *out)
{
	struct ip *ip = (struct ip *)out;
	struct tcphdr *t = (struct tcphdr *)(out + sizeof(*ip));
	u_char pseudo[12];
	int len = sizeof(*ip) + sizeof(*t);

	memset(out, 0, len);
	ip->ip_v = 4;
	ip->ip_hl = sizeof(*ip) >> 2;
	ip->ip_len = htons(len);
	ip->ip_ttl = 64;
	ip->ip_p = IPPROTO_TCP;
	ip->ip_src = syn->ip_dst;
	ip->ip_dst = syn->ip_src;
	ip->ip_sum = fold(sum16(ip, sizeof(*ip), 0));
	t->th_sport = th->th_dport;
	t->th_dport = th->th_sport;
	t->th_seq = 0;
	t->th_ack = htonl(ntohl(th->th_seq) + 1);
	t->th_off = sizeof(*t) >> 2;
	t->th_flags = TH_RST | TH_ACK;
	memcpy(pseudo, &ip->ip_src, 4);
	memcpy(pseudo + 4, &ip->ip_dst, 4);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	pseudo[10] = 0;
	pseudo[11] = sizeof(*t);
	t->th_sum = fold(sum16(t, sizeof(*t), sum16(pseudo, sizeof(pseudo), 0)));
	return len;
}

int main(int argc, char **argv)
{
	static u_char buf[IP_MAXPACKET], rst[64];
	struct sockaddr_in sin, to;
	socklen_t slen;
	struct sigaction sa;
	int fd, c, verbose = 0, divport = -1;

	while ((c = getopt(argc, argv, "p:v")) != -1) {
		switch (c) {
		case 'p': divport = atoi(optarg); break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: divert_rst -p DIVERTPORT [-v]\n");
			return 2;
		}
	}
	if (divport < 0)
		errx(2, "usage: divert_rst -p DIVERTPORT [-v]");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT)) == -1)
		err(1, "socket");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(divport);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "bind divert port %d", divport);
	printf("ready\n");

	while (!quit) {
		struct ip *ip = (struct ip *)buf;
		struct tcphdr *th;
		int n, hl, len;

		slen = sizeof(sin);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "recvfrom");
		}
		hl = ip->ip_hl << 2;
		th = (struct tcphdr *)(buf + hl);
		if (ip->ip_v != 4 || ip->ip_p != IPPROTO_TCP || n < hl + (int)sizeof(*th) ||
		    (th->th_flags & (TH_SYN | TH_ACK)) != TH_SYN) {
			if (sendto(fd, buf, n, 0, (struct sockaddr *)&sin, slen) == -1)
				warn("sendto");
			continue;
		}
		/* The SYN is not written back. The RST goes the other way. */
		len = make_rst(ip, th, rst);
		to = sin;
		to.sin_addr.s_addr = sin.sin_addr.s_addr == INADDR_ANY ? ip->ip_src.s_addr
								       : INADDR_ANY;
		if (sendto(fd, rst, len, 0, (struct sockaddr *)&to, sizeof(to)) == -1)
			warn("sendto RST");
		else if (verbose)
			printf("rst %s:%u\n", inet_ntoa(ip->ip_src), ntohs(th->th_sport));
	}
	close(fd);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * divert_tee - log every diverted packet and pass it on, written for
 * FreeBSD's divert(4); builds unchanged on Linux with <luadivert/divert.h>
 * and -lluadivert-divert.
 *
 *   divert_tee -p DIVERTPORT [-q] [-P] [-b RCVBUF]
 *
 * One line per packet on stdout (direction, interface, addresses, length),
 * or with -q only the totals at exit. -P waits in poll(2) on a non-blocking
 * socket and reads until EAGAIN, the way an event-driven daemon does; the
 * default is a blocking recvfrom loop. -b sets SO_RCVBUF. SIGUSR1 prints
 * {"packets":N,"eagain":E}; SIGTERM or SIGINT prints "packets N eagain E"
 * and exits.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <luadivert/divert.h>

static volatile sig_atomic_t quit, report;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report = 1;
	else
		quit = 1;
}

static void log_packet(const u_char *buf, int n, const struct sockaddr_in *sin)
{
	const struct ip *ip = (const struct ip *)buf;
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];

	if (n >= (int)sizeof(*ip) && ip->ip_v == 4) {
		inet_ntop(AF_INET, &ip->ip_src, src, sizeof(src));
		inet_ntop(AF_INET, &ip->ip_dst, dst, sizeof(dst));
	} else {
		strcpy(src, "?");
		strcpy(dst, "?");
	}
	printf("%s %.7s %s proto %d %s > %s len %d\n",
	       sin->sin_addr.s_addr == INADDR_ANY ? "out" : "in",
	       sin->sin_zero[0] ? (const char *)sin->sin_zero : "-",
	       inet_ntoa(sin->sin_addr), n >= 20 ? buf[9] : -1, src, dst, n);
}

int main(int argc, char **argv)
{
	static u_char buf[IP_MAXPACKET];
	struct sockaddr_in sin;
	socklen_t slen;
	struct sigaction sa;
	unsigned long packets = 0, eagain = 0;
	int fd, c, quiet = 0, use_poll = 0, rcvbuf = 0, divport = -1;

	while ((c = getopt(argc, argv, "p:qPb:")) != -1) {
		switch (c) {
		case 'p': divport = atoi(optarg); break;
		case 'q': quiet = 1; break;
		case 'P': use_poll = 1; break;
		case 'b': rcvbuf = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: divert_tee -p DIVERTPORT [-q] [-P] [-b RCVBUF]\n");
			return 2;
		}
	}
	if (divport < 0)
		errx(2, "usage: divert_tee -p DIVERTPORT [-q] [-P] [-b RCVBUF]");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((fd = socket(PF_INET, SOCK_RAW, IPPROTO_DIVERT)) == -1)
		err(1, "socket");
	if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == -1)
		err(1, "SO_RCVBUF");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(divport);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "bind divert port %d", divport);
	if (use_poll && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		err(1, "O_NONBLOCK");
	if (rcvbuf) {
		socklen_t l = sizeof(rcvbuf);

		if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &l) == -1)
			err(1, "getsockopt SO_RCVBUF");
		printf("rcvbuf %d\n", rcvbuf);
	}
	printf("ready\n");

	while (!quit) {
		int n;

		if (report) {
			report = 0;
			printf("{\"packets\":%lu,\"eagain\":%lu}\n", packets, eagain);
		}
		if (use_poll) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			if (poll(&pfd, 1, 1000) == -1 && errno != EINTR)
				err(1, "poll");
			if (quit || !(pfd.revents & POLLIN))
				continue;
		}
		for (;;) {     /* with -P: everything that is there, then EAGAIN */
			slen = sizeof(sin);
			n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen);
			if (n == -1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					eagain++;
					break;
				}
				if (errno == EINTR)
					break;
				err(1, "recvfrom");
			}
			packets++;
			if (!quiet)
				log_packet(buf, n, &sin);
			if (sendto(fd, buf, n, 0, (struct sockaddr *)&sin, slen) == -1)
				warn("sendto");
			if (!use_poll)
				break;
		}
	}
	printf("packets %lu eagain %lu\n", packets, eagain);
	close(fd);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * nfq_drain_multi - nfq_drain for several queues and readers at once
 * (issue 16, bench/workers_scaling.sh): time how fast stopped readers
 * empty queues FIRST..FIRST+N-1 together.
 *
 *   nfq_drain_multi --queue FIRST --queues N --pid PID [--pid PID ...] [--timeout SECONDS]
 *
 * Notes how many packets wait in the N queues (/proc/net/netfilter/
 * nfnetlink_queue, field 3), sends SIGCONT to every PID (the readers: bare-C
 * loops or luadivert's workers), polls until none waits in any queue, and
 * prints
 *
 *   {"drained":N,"elapsed_ns":T,"pps":R,"max_queue":M}
 *
 * max_queue is the most packets one queue held at the start: the flow hash
 * spreads the packets, not always evenly, and the longest queue sets the
 * time.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "drain_common.h"

enum { PIDS_MAX = 1024 };

/* packets waiting in FIRST..FIRST+N-1, the most in one (*max), queues bound (*bound) */
static long waiting_in(unsigned first, unsigned n, long *max, unsigned *bound)
{
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
	unsigned q, portid;
	long w, sum = 0;
	char line[256];

	if (!f)
		die("/proc/net/netfilter/nfnetlink_queue");
	*max = 0;
	*bound = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%u %u %ld", &q, &portid, &w) != 3 || q < first || q >= first + n)
			continue;
		sum += w;
		if (w > *max)
			*max = w;
		(*bound)++;
	}
	if (fclose(f) == EOF)
		die("close");
	return sum;
}

int main(int argc, char **argv)
{
	static pid_t pids[PIDS_MAX];
	unsigned npids = 0, bound;
	long first = -1, n = 0, max, waiting;
	double timeout = 10;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pid") && npids < PIDS_MAX)
			pids[npids++] = (pid_t)strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--queue"))
			first = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--queues"))
			n = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--timeout"))
			timeout = strtod(argv[i + 1], NULL);
		else
			first = -1;
	}
	if (!npids || first < 0 || n < 1 || first + n > 65536 || !(timeout > 0) || argc % 2 == 0) {
		fprintf(stderr, "usage: nfq_drain_multi --queue FIRST --queues N --pid PID "
			"[--pid PID ...] [--timeout SECONDS]\n");
		return 2;
	}
	for (unsigned i = 0; i < npids; i++)
		if (pids[i] <= 0) {
			fprintf(stderr, "nfq_drain_multi: bad --pid\n");
			return 2;
		}
	waiting = waiting_in((unsigned)first, (unsigned)n, &max, &bound);
	if (bound != (unsigned)n) {
		fprintf(stderr, "nfq_drain_multi: %u of the %ld queues are bound\n", bound, n);
		return 1;
	}
	long max0 = max;
	uint64_t t0 = now_ns(), limit = t0 + (uint64_t)(timeout * 1e9), t1;
	struct timespec nap = { 0, 20000 };

	for (unsigned i = 0; i < npids; i++)
		if (kill(pids[i], SIGCONT) < 0)
			die("SIGCONT");
	for (;;) {
		long w = waiting_in((unsigned)first, (unsigned)n, &max, &bound);

		t1 = now_ns();
		if (w <= 0)
			break;
		if (t1 > limit) {
			fprintf(stderr, "nfq_drain_multi: %ld packets still waiting after %.1f s\n", w,
				timeout);
			return 1;
		}
		if (nanosleep(&nap, NULL) < 0 && errno != EINTR)
			die("nanosleep");
	}
	double el = (double)(t1 - t0);
	printf("{\"drained\":%ld,\"elapsed_ns\":%.0f,\"pps\":%.0f,\"max_queue\":%ld}\n", waiting, el,
	       el > 0 ? (double)waiting * 1e9 / el : 0.0, max0);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * nfq_drain - time how fast a stopped NFQUEUE reader empties its queue.
 *
 *   nfq_drain --pid PID --queue N [--timeout SECONDS]
 *
 * On a 2-core machine a sender and a reader share the CPUs, so the sender
 * caps what a steady-state test can show. bench/run.sh therefore also
 * measures the reader alone: it stops the reader (SIGSTOP), fills the queue,
 * and runs this tool inside the namespace. nfq_drain notes how many packets
 * wait in queue N (/proc/net/netfilter/nfnetlink_queue, field 3), sends
 * SIGCONT, polls until none wait, and prints
 *
 *   {"drained":N,"elapsed_ns":T,"pps":R,"cpu_ns":C,"cpu_ns_per_pkt":P,
 *    "utime_ticks":U,"stime_ticks":S}
 *
 * cpu_ns is the reader's CPU time over the drain, summed over its threads
 * (/proc/PID/task/x/schedstat, nanoseconds); the ticks split it into user
 * and system time (/proc/PID/stat, clock ticks).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "drain_common.h"

/* packets waiting in QUEUE, or -1 when the queue does not exist */
static long queue_waiting(unsigned queue)
{
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
	unsigned q, portid;
	long waiting, found = -1;

	if (!f)
		die("/proc/net/netfilter/nfnetlink_queue");
	char line[256];
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%u %u %ld", &q, &portid, &waiting) == 3 && q == queue)
			found = waiting;
	if (fclose(f) == EOF)
		die("close");
	return found;
}

/* CPU time of every thread of PID, ns */
static uint64_t cpu_ns(pid_t pid)
{
	char path[64];
	uint64_t sum = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		die(path);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p2[128];
		unsigned long long run;
		snprintf(p2, sizeof(p2), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p2, "r");
		if (!f)
			continue;   /* the thread ended meanwhile */
		if (fscanf(f, "%llu", &run) == 1)
			sum += run;
		fclose(f);
	}
	if (closedir(d) < 0)
		die("closedir");
	return sum;
}

/* utime and stime of PID (all threads), clock ticks */
static void cpu_ticks(pid_t pid, unsigned long long *ut, unsigned long long *st)
{
	char path[64], buf[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		die(path);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f))
		die(path);
	fclose(f);
	buf[n] = 0;
	/* fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	                 ut, st) != 2) {
		errno = EINVAL;
		die(path);
	}
}

int main(int argc, char **argv)
{
	long pid = 0, queue = -1;
	double timeout = 10;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pid"))
			pid = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--queue"))
			queue = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--timeout"))
			timeout = strtod(argv[i + 1], NULL);
		else
			pid = 0;
	}
	if (pid <= 0 || queue < 0 || queue > 65535 || !(timeout > 0) || argc % 2 == 0) {
		fprintf(stderr, "usage: nfq_drain --pid PID --queue N [--timeout SECONDS]\n");
		return 2;
	}
	long waiting = queue_waiting((unsigned)queue);
	if (waiting < 0) {
		fprintf(stderr, "nfq_drain: queue %ld is not bound\n", queue);
		return 1;
	}
	unsigned long long ut0, st0, ut1, st1;
	cpu_ticks((pid_t)pid, &ut0, &st0);
	uint64_t c0 = cpu_ns((pid_t)pid), t0 = now_ns();
	uint64_t limit = t0 + (uint64_t)(timeout * 1e9), t1;
	struct timespec nap = { 0, 20000 };

	if (kill((pid_t)pid, SIGCONT) < 0)
		die("SIGCONT");
	for (;;) {
		long w = queue_waiting((unsigned)queue);
		t1 = now_ns();
		if (w <= 0)
			break;
		if (t1 > limit) {
			fprintf(stderr, "nfq_drain: %ld packets still waiting after %.1f s\n", w, timeout);
			return 1;
		}
		if (nanosleep(&nap, NULL) < 0 && errno != EINTR)
			die("nanosleep");
	}
	uint64_t c1 = cpu_ns((pid_t)pid);
	cpu_ticks((pid_t)pid, &ut1, &st1);
	double el = (double)(t1 - t0);
	printf("{\"drained\":%ld,\"elapsed_ns\":%.0f,\"pps\":%.0f,\"cpu_ns\":%" PRIu64
	       ",\"cpu_ns_per_pkt\":%.0f,\"utime_ticks\":%llu,\"stime_ticks\":%llu}\n",
	       waiting, el, el > 0 ? (double)waiting * 1e9 / el : 0.0, c1 - c0,
	       waiting ? (double)(c1 - c0) / (double)waiting : 0.0, ut1 - ut0, st1 - st0);
	return 0;
}

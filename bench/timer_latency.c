// SPDX-License-Identifier: MIT
/*
 * timer_latency - how late a timerfd wakes a process on this machine, the
 * fact --timer-lead rests on (core/timer_lead.h). Arms an absolute
 * CLOCK_MONOTONIC timerfd COUNT times, PERIOD_US apart, waits in
 * epoll_wait as the worker does, with the timer slack at 1 ns as the
 * worker sets it, and prints the lateness percentiles in us:
 *
 *   timer_latency [COUNT [PERIOD_US]]      (defaults 20000, 100)
 *   {"count":N,"p50":..,"p90":..,"p99":..,"p999":..,"max":..}
 *
 * Run it under `chrt -f 50` to see that scheduling is not the cause: on
 * the VMs measured, the timer interrupt itself comes 40 us late.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "drain_common.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)n);

	return (double)v[i < n ? i : n - 1] / 1e3;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	long period_us = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t *late, due;
	int tfd, ep;

	if (count < 1 || count > 10000000 || period_us < 1 || period_us > 1000000) {
		fprintf(stderr, "usage: timer_latency [COUNT 1..10000000 [PERIOD_US 1..1000000]]\n");
		return 2;
	}
	late = calloc((size_t)count, sizeof(*late));
	if (!late)
		die("calloc");
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) < 0)
		die("prctl(PR_SET_TIMERSLACK)");
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (tfd < 0 || ep < 0)
		die("timerfd_create/epoll_create1");
	ev.data.fd = tfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
		die("epoll_ctl");
	due = now_ns() + (uint64_t)period_us * 1000u;
	for (long i = 0; i < count; i++) {
		struct itimerspec its = { .it_value = { .tv_sec = (time_t)(due / 1000000000u),
							 .tv_nsec = (long)(due % 1000000000u) } };
		struct epoll_event got;
		uint64_t ticks, t;

		if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			die("timerfd_settime");
		while (epoll_wait(ep, &got, 1, -1) < 0)
			if (errno != EINTR)
				die("epoll_wait");
		t = now_ns();
		if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
			die("read(timerfd)");
		late[i] = t > due ? t - due : 0;
		due += (uint64_t)period_us * 1000u;
		if (due <= t)   /* fell behind: the next one from now */
			due = t + (uint64_t)period_us * 1000u;
	}
	qsort(late, (size_t)count, sizeof(*late), cmp_u64);
	printf("{\"count\":%ld,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}\n",
	       count, pct(late, (size_t)count, 50), pct(late, (size_t)count, 90),
	       pct(late, (size_t)count, 99), pct(late, (size_t)count, 99.9),
	       (double)late[count - 1] / 1e3);
	free(late);
	return 0;
}

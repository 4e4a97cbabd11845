/* SPDX-License-Identifier: MIT */
/* drain_common.h - what bench/nfq_drain.c and nfq_drain_multi.c share. */
#ifndef LD_DRAIN_COMMON_H
#define LD_DRAIN_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A failed system call ends the measurement: say which, exit 1. */
static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		die("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* LD_DRAIN_COMMON_H */

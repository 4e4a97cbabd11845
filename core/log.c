// SPDX-License-Identifier: MIT
/* log.c - stderr logging with a per-worker rate limit. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum { NS_PER_SEC = 1000000000 };

uint64_t ld_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 0)))
static void vlog(const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "luadivert: %s\n", line);
}

void ld_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void ld_log_limit_flush(struct ld_log_limit *lim)
{
	if (lim->suppressed)
		ld_log("(%llu similar messages suppressed)", (unsigned long long)lim->suppressed);
	lim->suppressed = 0;
}

void ld_log_limited(struct ld_log_limit *lim, const char *fmt, ...)
{
	uint64_t now = ld_now_ns();
	va_list ap;

	if (now - lim->window_ns >= NS_PER_SEC) {
		ld_log_limit_flush(lim);
		lim->window_ns = now;
		lim->sent = 0;
		lim->suppressed = 0;
	}
	if (lim->sent >= LD_LOG_BURST) {
		lim->suppressed++;
		return;
	}
	lim->sent++;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

/* SPDX-License-Identifier: MIT */
/* log.h - messages to stderr, and a rate limit so an error flood stays readable. */
#ifndef LD_LOG_H
#define LD_LOG_H

#include <stdint.h>

enum { LD_LOG_BURST = 10 };  /* messages let through per second before suppressing */

struct ld_log_limit {
	uint64_t window_ns;   /* start of the current one-second window */
	uint32_t sent;        /* messages let through in this window */
	uint64_t suppressed;  /* messages held back since the last summary */
};

/**
 * ld_log() - print "luadivert: <message>" on stderr
 * @fmt: printf format
 */
void ld_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * ld_log_limited() - like ld_log(), but at most LD_LOG_BURST per second
 * @lim: the limiter (one per worker: no shared state)
 * @fmt: printf format
 *
 * When a window closes after suppressing messages, the next message is
 * preceded by a line saying how many were held back.
 */
void ld_log_limited(struct ld_log_limit *lim, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/**
 * ld_log_limit_flush() - say how many messages were held back, if any
 * @lim: the limiter
 */
void ld_log_limit_flush(struct ld_log_limit *lim);

/**
 * ld_now_ns() - CLOCK_MONOTONIC in nanoseconds
 *
 * Return: the time; the clock cannot fail on Linux for a valid clock id.
 */
uint64_t ld_now_ns(void);

#endif /* LD_LOG_H */

/* SPDX-License-Identifier: MIT */
/*
 * busy_poll.h - `luadivert run --busy-poll USEC`: after a packet, the worker
 * polls the queue without sleeping (epoll_wait with timeout 0) for up to
 * USEC before it blocks in epoll_wait again. A packet that arrives within
 * that time is read at once, without the wake-up of a sleeping process
 * (scheduler latency, and a CPU leaving an idle state): lower latency for
 * sparse traffic, at the price of one CPU spinning while traffic lasts.
 * Off (0) by default. The timeout-0 call is the same system call as the
 * blocking one, so the sandbox's seccomp allow-list needs nothing new.
 */
#ifndef LD_BUSY_POLL_H
#define LD_BUSY_POLL_H

#include <stdint.h>

#include "log.h"

enum {
	LD_BUSY_POLL_MAX_US = 1000000,   /* --busy-poll takes 0..1 s */
};

struct ld_busy_poll {
	uint64_t window_ns;   /* how long to spin after a packet; 0 = off */
	uint64_t until_ns;    /* spin until then; 0 = sleep */
};

/**
 * ld_busy_poll_init() - set up the spin state
 * @b: the state
 * @us: --busy-poll in microseconds (0: off)
 */
static inline void ld_busy_poll_init(struct ld_busy_poll *b, uint32_t us)
{
	b->window_ns = (uint64_t)us * 1000u;
	b->until_ns = 0;
}

/**
 * ld_busy_poll_timeout() - the epoll_wait timeout to use now
 * @b: the state
 *
 * Return: 0 while spinning, -1 (block) otherwise.
 */
static inline int ld_busy_poll_timeout(const struct ld_busy_poll *b)
{
	return b->until_ns ? 0 : -1;
}

/**
 * ld_busy_poll_active() - the queue had something: spin for a window from now
 * @b: the state
 */
static inline void ld_busy_poll_active(struct ld_busy_poll *b)
{
	if (b->window_ns)
		b->until_ns = ld_now_ns() + b->window_ns;
}

/**
 * ld_busy_poll_idle() - an epoll_wait returned nothing
 * @b: the state
 *
 * Return: 1 to poll again (still spinning), 0 when the window is over (the
 * next epoll_wait blocks) or not spinning at all.
 */
static inline int ld_busy_poll_idle(struct ld_busy_poll *b)
{
	if (!b->until_ns)
		return 0;
	if (ld_now_ns() < b->until_ns)
		return 1;
	b->until_ns = 0;
	return 1;   /* loop once more: this time it blocks */
}

#endif /* LD_BUSY_POLL_H */

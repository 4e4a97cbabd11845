/* SPDX-License-Identifier: MIT */
/*
 * timer_lead.h - release held packets on time although a timer wakes late.
 *
 * A timerfd set for time T wakes the worker some time after T: on the VMs
 * this was measured on, 40 us at the median and 70-100 us at p99, with the
 * timer slack at 1 ns and under SCHED_FIFO alike: the timer interrupt
 * itself comes late (docs/shaping.md, "Precision"). That latency was most
 * of the release error at output. So the timer is armed a lead before the
 * first due time, and the worker waits out the rest polling its events
 * without sleeping (epoll_wait with timeout 0), so that packets arriving
 * meanwhile are read at once: a plain spin delayed them, and since every
 * hold starts when its packet is read, the next releases too. The release
 * is late only when the wake-up is later than the lead.
 *
 * The lead follows the wake-up latency itself: an online estimate of its
 * 90th percentile (a stochastic-approximation quantile tracker: up by
 * q / (1 - q) = 9 steps when a wake-up was later than the lead, down by
 * one step when it was earlier; no memory of past wake-ups is kept). The
 * CPU this costs is the lead minus the actual latency, per wake-up (at 10k
 * held packets/s: 48-53% of a CPU instead of 31%); `--timer-lead 0` turns
 * it off and `--timer-lead USEC` fixes it. (The 98th percentile was tried:
 * 88% of a CPU, no better p99.)
 */
#ifndef LD_TIMER_LEAD_H
#define LD_TIMER_LEAD_H

#include <stdint.h>

enum {
	LD_TIMER_LEAD_AUTO = -1,           /* --timer-lead auto: follow the latency */
	LD_TIMER_LEAD_MAX_US = 1000,       /* the most --timer-lead takes */
	LD_TIMER_LEAD_AUTO_MAX_NS = 200000, /* auto never polls longer than this */
	LD_TIMER_LEAD_START_NS = 50000,    /* auto's first guess */
	LD_TIMER_LEAD_STEP_NS = 500,       /* auto's step down; the step up is 9 of them */
	LD_TIMER_LEAD_UP_STEPS = 9,        /* q / (1 - q) for q = 0.9 */
};

struct ld_timer_lead {
	uint64_t lead_ns;   /* arm the timer this long before the due time */
	uint64_t max_ns;    /* auto: the lead's ceiling */
	int adaptive;       /* 1: auto */
	uint64_t wakeups;   /* timer wake-ups observed */
	uint64_t spin_ns;   /* time spent polling, not sleeping, for a due time */
	uint64_t late;      /* wake-ups later than the lead */
};

/**
 * ld_timer_lead_init() - set up the lead
 * @t: the state
 * @us: LD_TIMER_LEAD_AUTO, or a fixed lead in microseconds (0: off)
 */
void ld_timer_lead_init(struct ld_timer_lead *t, int32_t us);

/**
 * ld_timer_lead_fire_at() - when to arm the timer for a release due at @due_ns
 * @t: the state
 * @due_ns: the first due time (CLOCK_MONOTONIC ns), > 0
 *
 * Return: @due_ns minus the lead, and never 0 (0 disarms a timerfd).
 */
uint64_t ld_timer_lead_fire_at(const struct ld_timer_lead *t, uint64_t due_ns);

/**
 * ld_timer_lead_observe() - a timer armed for @fire_ns woke the worker at @now_ns
 * @t: the state
 * @fire_ns: the time the timer was armed for
 * @now_ns: the time of the wake-up
 *
 * With auto, moves the lead toward the latency's 90th percentile.
 */
void ld_timer_lead_observe(struct ld_timer_lead *t, uint64_t fire_ns, uint64_t now_ns);

/**
 * ld_timer_lead_poll_until() - after a wake-up: poll until @due_ns, or not
 * @t: the state
 * @due_ns: the first due time
 * @now_ns: now
 *
 * Return: @due_ns when it is ahead of now by no more than the lead (the
 * caller polls until then, so the wait is bounded by the lead), else 0:
 * release what is due now, and arm the timer for the rest.
 */
uint64_t ld_timer_lead_poll_until(const struct ld_timer_lead *t, uint64_t due_ns, uint64_t now_ns);

/**
 * ld_timer_lead_polled() - count a poll that began at @from_ns and ended at @now_ns
 * @t: the state
 * @from_ns: when the poll began
 * @now_ns: when it ended
 */
void ld_timer_lead_polled(struct ld_timer_lead *t, uint64_t from_ns, uint64_t now_ns);

#endif /* LD_TIMER_LEAD_H */

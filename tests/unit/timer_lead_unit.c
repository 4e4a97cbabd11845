// SPDX-License-Identifier: MIT
/*
 * timer_lead_unit.c - the hold timer's lead (core/timer_lead.c): a fixed
 * lead arms early by exactly that much, 0 arms on time; auto settles near
 * the 90th percentile of the wake-up latencies it is shown, stays within
 * its ceiling and at or above 0; a due time within the lead is polled for,
 * one further away or past is not. Built with ASan+UBSan. Prints "N
 * passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../core/log.c"
#include "../../core/timer_lead.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* Feed @n wake-ups with latencies uniform in [lo, hi) us; return the lead in us. */
static double settle(struct ld_timer_lead *t, int n, uint64_t lo, uint64_t hi)
{
	srand(7);
	for (int i = 0; i < n; i++) {
		uint64_t lat = (lo + (uint64_t)rand() % (hi - lo)) * 1000u;

		ld_timer_lead_observe(t, 1000000000u, 1000000000u + lat);
	}
	return (double)t->lead_ns / 1e3;
}

int main(void)
{
	struct ld_timer_lead t;
	const uint64_t due = 5000000000u;

	/* fixed leads */
	ld_timer_lead_init(&t, 0);
	CHECK(ld_timer_lead_fire_at(&t, due) == due);
	CHECK(ld_timer_lead_poll_until(&t, due, due - 1) == 0);   /* off: never polls */
	settle(&t, 1000, 40, 90);
	CHECK(t.lead_ns == 0 && t.wakeups == 1000 && t.late == 1000);
	ld_timer_lead_init(&t, 70);
	CHECK(ld_timer_lead_fire_at(&t, due) == due - 70000);
	CHECK(ld_timer_lead_fire_at(&t, 100) == 1);               /* never 0: that disarms */
	CHECK(ld_timer_lead_poll_until(&t, due, due - 70000) == due);
	CHECK(ld_timer_lead_poll_until(&t, due, due - 70001) == 0); /* further than the lead */
	CHECK(ld_timer_lead_poll_until(&t, due, due) == 0);         /* due now: release */
	CHECK(ld_timer_lead_poll_until(&t, due, due + 5) == 0);     /* past */
	settle(&t, 1000, 40, 90);
	CHECK(t.lead_ns == 70000);                                  /* fixed: not moved */

	/* auto: latencies uniform in 40..90 us have their p90 at 85 us */
	ld_timer_lead_init(&t, LD_TIMER_LEAD_AUTO);
	CHECK(t.lead_ns == LD_TIMER_LEAD_START_NS);
	double lead = settle(&t, 20000, 40, 90);
	CHECK(lead >= 80 && lead <= 90);
	double late = (double)t.late / (double)t.wakeups;
	CHECK(late > 0.05 && late < 0.2);
	/* a quieter timer: the lead comes down with it */
	lead = settle(&t, 20000, 5, 15);
	CHECK(lead >= 10 && lead <= 16);
	/* a timer later than the ceiling: the lead stops there */
	lead = settle(&t, 2000, 500, 600);
	CHECK(t.lead_ns == LD_TIMER_LEAD_AUTO_MAX_NS);
	/* one that is never late: the lead goes to 0, not below */
	settle(&t, 2000, 0, 1);
	CHECK(t.lead_ns == 0);
	/* polled time is counted */
	ld_timer_lead_polled(&t, 100, 350);
	ld_timer_lead_polled(&t, 400, 300);                        /* clock order: ignored */
	CHECK(t.spin_ns == 250);
	(void)lead;
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}

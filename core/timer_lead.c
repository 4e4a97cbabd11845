// SPDX-License-Identifier: MIT
/*
 * timer_lead.c - the timer's lead over the due time of held packets
 * (timer_lead.h).
 */
#include "timer_lead.h"

void ld_timer_lead_init(struct ld_timer_lead *t, int32_t us)
{
	*t = (struct ld_timer_lead){ 0 };
	if (us == LD_TIMER_LEAD_AUTO) {
		t->adaptive = 1;
		t->max_ns = LD_TIMER_LEAD_AUTO_MAX_NS;
		t->lead_ns = LD_TIMER_LEAD_START_NS;
	} else {
		t->lead_ns = (uint64_t)(us > 0 ? us : 0) * 1000u;
		t->max_ns = t->lead_ns;
	}
}

uint64_t ld_timer_lead_fire_at(const struct ld_timer_lead *t, uint64_t due_ns)
{
	return due_ns > t->lead_ns ? due_ns - t->lead_ns : 1;
}

void ld_timer_lead_observe(struct ld_timer_lead *t, uint64_t fire_ns, uint64_t now_ns)
{
	uint64_t latency = now_ns > fire_ns ? now_ns - fire_ns : 0;

	t->wakeups++;
	if (latency > t->lead_ns)
		t->late++;
	if (!t->adaptive)
		return;
	if (latency > t->lead_ns) {
		t->lead_ns += LD_TIMER_LEAD_UP_STEPS * LD_TIMER_LEAD_STEP_NS;
		if (t->lead_ns > t->max_ns)
			t->lead_ns = t->max_ns;
	} else if (t->lead_ns >= LD_TIMER_LEAD_STEP_NS) {
		t->lead_ns -= LD_TIMER_LEAD_STEP_NS;
	}
}

uint64_t ld_timer_lead_poll_until(const struct ld_timer_lead *t, uint64_t due_ns, uint64_t now_ns)
{
	if (due_ns <= now_ns || due_ns - now_ns > t->lead_ns)
		return 0;
	return due_ns;
}

void ld_timer_lead_polled(struct ld_timer_lead *t, uint64_t from_ns, uint64_t now_ns)
{
	if (now_ns > from_ns)
		t->spin_ns += now_ns - from_ns;
}

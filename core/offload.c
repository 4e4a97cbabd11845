// SPDX-License-Identifier: MIT
/*
 * offload.c - divert.OFFLOAD: the verdict's translation and the rules that
 * let offloaded connections skip the queue (see offload.h for how).
 */
#include "offload.h"

void ld_offload_batch(struct ld_packet *pkts, uint32_t n, uint32_t gen, struct ld_counters *c,
		      struct ld_log_limit *lim)
{
	uint32_t g = ld_offload_mark(gen);

	for (uint32_t i = 0; i < n; i++) {
		struct ld_packet *p = &pkts[i];
		uint32_t mark;

		if (p->verdict != LD_OFFLOAD)
			continue;
		if (gen == 0 || (p->mark & LD_OFFLOAD_MARK_MASK) == g) {
			/* no rule caught it after the first OFFLOAD: pass it, no loop */
			p->verdict = LD_PASS;
			if (gen) {
				c->offload_missed++;
				ld_log_limited(lim, "offload: packet id %u came back to the queue: the "
					       "rules do not save the offload mark (with --no-rules, "
					       "install what `luadivert rules print` shows; untracked "
					       "packets cannot be offloaded); passing it", p->id);
			}
			continue;
		}
		mark = (p->set & LD_SET_MARK) ? p->new_mark : p->mark;
		p->new_mark = (mark & ~(uint32_t)LD_OFFLOAD_MARK_MASK) | g;
		p->set |= LD_SET_MARK;
		p->verdict = LD_REPEAT;
		c->offloaded++;
	}
}

// SPDX-License-Identifier: MIT
/* reload_grace.c - old or new code for the packets queued around a rule swap. */
#include "reload_grace.h"

#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

/* Packet ids wrap at 2^32: compare them as a distance. */
static int id_after(uint32_t id, uint32_t ref)
{
	return (int32_t)(id - ref) > 0;
}

/* "N,code jt jf k,..." (xt_bpf's --bytecode text) back into instructions. */
static int parse_bytecode(const char *text, struct bpf_insn *out, unsigned *n)
{
	char *end;
	unsigned long count = strtoul(text, &end, 10);
	unsigned i;

	if (end == text || count == 0 || count > LD_RULES_BPF_MAX)
		return -1;
	for (i = 0; i < count; i++) {
		unsigned long v[4];

		for (int f = 0; f < 4; f++) {
			const char *p = end + 1;

			if (*end != (f ? ' ' : ','))
				return -1;
			v[f] = strtoul(p, &end, 10);
			if (end == p)
				return -1;
		}
		out[i].code = (unsigned short)v[0];
		out[i].jt = (unsigned char)v[1];
		out[i].jf = (unsigned char)v[2];
		out[i].k = (bpf_u_int32)v[3];
	}
	*n = (unsigned)count;
	return *end == '\0' ? 0 : -1;
}

int ld_grace_begin(struct ld_grace *g, const struct ld_rules_set *next, uint32_t before,
		   uint32_t after)
{
	memset(g, 0, sizeof *g);
	for (int fi = 0; fi < 2; fi++)
		if (next->prog.ninsn[fi] &&
		    parse_bytecode(next->prog.bytecode[fi], g->insns[fi], &g->ninsn[fi]) < 0)
			return -1;
	g->before = before;
	g->after = after;
	g->hooks = next->cfg.hooks ? next->cfg.hooks : (unsigned)LD_HOOK_DEFAULT;
	g->families = next->prog.families;
	g->skip_mark = next->cfg.skip_mark;
	g->active = 1;
	return 0;
}

/* Would the new rules have sent @p to the queue? */
static int new_rules_match(const struct ld_grace *g, const struct ld_packet *p)
{
	int fi;

	if (p->hook > 4 || !(g->hooks & (1u << p->hook)))
		return 0;
	if (p->len < 1)
		return 0;
	fi = (p->data[0] >> 4) == 6;
	if ((p->data[0] >> 4) != 4 && !fi)
		return 0;
	if (!(g->families & (1u << fi)))
		return 0;
	if (g->skip_mark && (p->mark & g->skip_mark) == g->skip_mark)
		return 0;
	return !g->ninsn[fi] || bpf_filter(g->insns[fi], p->data, p->orig_len, p->len) != 0;
}

int ld_grace_new_code(const struct ld_grace *g, const struct ld_packet *p)
{
	if (!id_after(p->id, g->before))
		return 0;
	if (id_after(p->id, g->after))
		return 1;
	return new_rules_match(g, p);
}

int ld_grace_over(const struct ld_grace *g, uint32_t id)
{
	return id_after(id, g->after);
}

/* SPDX-License-Identifier: MIT */
/*
 * offload.h - divert.OFFLOAD: a connection the policy has decided about
 * skips the queue from then on, both directions, until the next reload.
 *
 * How (docs/rules.md#offload): the verdict is sent as NF_REPEAT with the
 * packet mark's LD_OFFLOAD_MARK_MASK bits set to the current generation.
 * NF_REPEAT makes the kernel run the same table at the same hook again,
 * from the top, so the packet meets luadivert's chain a second time, where
 * the rules before the NFQUEUE rule
 *
 *   -m mark --mark G/M -j CONNMARK --save-mark --nfmask M --ctmask M
 *   -m mark --mark G/M -j MARK --set-xmark 0x0/M
 *   -m connmark --mark G/M -j RETURN
 *
 * copy the generation into the conntrack mark, give the packet its own mark
 * back, and let it (and every later packet of the connection, either
 * direction) leave the chain before the NFQUEUE rule. Why NF_REPEAT: an
 * NF_ACCEPT verdict resumes at the next table, never at the next rule, and
 * setting the conntrack mark in the verdict (NFQA_CT) needs
 * CONFIG_NETFILTER_NETLINK_GLUE_CT, which many kernels lack.
 *
 * A reload installs the rules of the next generation (one transaction,
 * core/rules_swap.c) and the workers mark with it (shared region), so the
 * flows offloaded before come back to the queue, and to the new policy.
 */
#ifndef LD_OFFLOAD_H
#define LD_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "counters.h"
#include "ld_abi.h"
#include "log.h"

enum {
	LD_OFFLOAD_GEN_FIRST = 1,     /* the generation of a start, and of --no-rules */
	LD_OFFLOAD_RULES_MAX = 512,   /* the three rules for the longest chain name */
};

/**
 * ld_offload_gen_next() - the generation a reload moves to
 * @gen: the current one (1..LD_OFFLOAD_GEN_MAX; 0 = offload rules off)
 *
 * Return: @gen + 1, wrapping to 1 after LD_OFFLOAD_GEN_MAX; 0 stays 0.
 */
static inline uint32_t ld_offload_gen_next(uint32_t gen)
{
	if (gen == 0)
		return 0;
	return gen >= LD_OFFLOAD_GEN_MAX ? LD_OFFLOAD_GEN_FIRST : gen + 1;
}

/**
 * ld_offload_mark() - the mark bits of generation @gen
 * @gen: 1..LD_OFFLOAD_GEN_MAX
 *
 * Return: @gen in LD_OFFLOAD_MARK_MASK.
 */
static inline uint32_t ld_offload_mark(uint32_t gen)
{
	return (gen << LD_OFFLOAD_MARK_SHIFT) & (uint32_t)LD_OFFLOAD_MARK_MASK;
}

/**
 * ld_offload_render_rules() - the rules that skip offloaded connections
 * @chain: luadivert's chain ("LUADIVERT-Q0")
 * @gen: the generation they match (1..LD_OFFLOAD_GEN_MAX)
 * @buf: receives three "-A CHAIN ..." lines for iptables-restore
 * @len: size of @buf (LD_OFFLOAD_RULES_MAX is enough)
 *
 * They go after the skip-mark rule and before the NFQUEUE rule.
 * Return: 0, or -1 if @buf is too small or @gen out of range.
 */
static inline int ld_offload_render_rules(const char *chain, uint32_t gen, char *buf,
					  size_t len)
{
	unsigned m = LD_OFFLOAD_MARK_MASK, g = ld_offload_mark(gen);
	int n;

	if (gen < 1 || gen > LD_OFFLOAD_GEN_MAX)
		return -1;
	/* the packet came back from an OFFLOAD verdict (NF_REPEAT): remember
	 * the generation in the connection, give the packet its mark back
	 * (policy routing must not see our bits), then skip the queue; the
	 * last rule also skips every later packet of the connection */
	n = snprintf(buf, len,
		     "-A %s -m mark --mark 0x%x/0x%x -j CONNMARK --save-mark --nfmask 0x%x --ctmask 0x%x\n"
		     "-A %s -m mark --mark 0x%x/0x%x -j MARK --set-xmark 0x0/0x%x\n"
		     "-A %s -m connmark --mark 0x%x/0x%x -j RETURN\n",
		     chain, g, m, m, m, chain, g, m, m, chain, g, m);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/**
 * ld_offload_batch() - turn the batch's OFFLOAD verdicts into NF_REPEAT + mark
 * @pkts: the batch after the policy ran
 * @n: packets in it
 * @gen: the current generation (the shared region's; 0: offload is off)
 * @c: counters (offloaded)
 * @lim: rate limit of the warning
 *
 * A packet that already carries the mark of @gen came back: the rules did
 * not save it (no offload rules, e.g. --no-rules without the rules of
 * `luadivert rules print`, or a connection conntrack does not track). It
 * gets NF_ACCEPT instead, so nothing loops, and a warning is logged. With
 * @gen 0 every OFFLOAD is a plain pass.
 */
void ld_offload_batch(struct ld_packet *pkts, uint32_t n, uint32_t gen, struct ld_counters *c,
		      struct ld_log_limit *lim);

#endif /* LD_OFFLOAD_H */

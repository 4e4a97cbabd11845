/* SPDX-License-Identifier: MIT */
/*
 * reload_grace.h - after a reload swapped the divert rules, which version
 * of the policy judges each packet still in the queue.
 *
 * The kernel numbers the packets of a queue in the order it queues them
 * (the packet id; /proc/net/netfilter/nfnetlink_queue shows the last one,
 * id_sequence). The reload reads that number just before the rules swap
 * (before) and just after it (after):
 *
 *   id <= before            queued by the old rules       -> old code
 *   before < id <= after    queued while the swap ran:
 *                             the new rules match it      -> new code
 *                             they do not                 -> old code (only
 *                                                            the old rules can
 *                                                            have queued it)
 *   id > after              queued by the new rules       -> new code
 *
 * So a packet is judged by the old rules and the old code, or by rules
 * that divert it and the new code. Matching "the new rules" in user space
 * means what the kernel tests: the hook, the IP version, the skip mark and
 * the same BPF program (libpcap's bpf_filter over the bytes we got). The
 * grace ends at the first packet numbered above @after.
 *
 * With a supervisor that owns the rules, it reads the two numbers around
 * its swap and hands them with the new set to the worker, which keeps its
 * old dispatch function until ld_grace_over().
 */
#ifndef LD_RELOAD_GRACE_H
#define LD_RELOAD_GRACE_H

#include <stdint.h>

#include <sys/types.h>

#include <pcap/bpf.h>

#include "ld_abi.h"
#include "rules_swap.h"

struct ld_grace {
	int      active;
	uint32_t before;                 /* last id queued before the swap began */
	uint32_t after;                  /* last id queued when it had ended */
	unsigned hooks;                  /* the new rules: enum ld_hook_bit */
	unsigned families;               /* LD_RULES_V4|V6 that have rules */
	uint32_t skip_mark;
	unsigned ninsn[2];               /* 0: no filter for that family */
	struct bpf_insn insns[2][LD_RULES_BPF_MAX];
};

/**
 * ld_grace_begin() - start judging by id and by the new rules
 * @g: state
 * @next: the rules installed by the swap
 * @before: the queue's id_sequence read before the swap
 * @after: the one read after it
 *
 * Return: 0, or -1 when @next's bytecode cannot be read back (then @g
 * stays inactive: every packet goes to the new code).
 */
int ld_grace_begin(struct ld_grace *g, const struct ld_rules_set *next, uint32_t before,
		   uint32_t after);

/**
 * ld_grace_new_code() - does the new version judge @p?
 * @g: an active grace
 * @p: a packet as received (before the policy touched it)
 *
 * Return: 1 for the new code, 0 for the old.
 */
int ld_grace_new_code(const struct ld_grace *g, const struct ld_packet *p);

/**
 * ld_grace_over() - has the queue moved past the swap?
 * @g: an active grace
 * @id: the id of the last packet read
 *
 * Return: 1 when @id was queued after the swap ended (so will every later one).
 */
int ld_grace_over(const struct ld_grace *g, uint32_t id);

#endif /* LD_RELOAD_GRACE_H */

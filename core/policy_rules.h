/* SPDX-License-Identifier: MIT */
/*
 * policy_rules.h - the divert rules a policy declares, and how they and the
 * command line become the rules installed for a queue.
 *
 * A policy table may declare what it diverts:
 *
 *   return { filter = "udp dst port 9000", hook = { "input", "output" },
 *            family = 4, on_packet = ... }
 *
 * The Lua host (lua/divert/host.lua) checks the types and hands the values
 * to C as plain data (struct ld_policy_rules); C parses the hook names and
 * compiles the filter. Precedence, field by field: what the policy
 * declares wins over --filter/--hook/--family, which win over the
 * defaults (every packet, input+output, both families). The policy wins
 * because it is what a reload can change: a command line that won would
 * make an edited declaration silently do nothing. Every override is logged.
 *
 * struct ld_divert is what `luadivert run` keeps to reload the rules: the
 * command line's choices and the set installed now. In the single-process
 * daemon the worker's reload (core/reload.c) uses it; a supervisor that
 * owns the rules would keep it instead and receive struct ld_policy_rules
 * from the worker.
 */
#ifndef LD_POLICY_RULES_H
#define LD_POLICY_RULES_H

#include <stddef.h>

#include "rules.h"
#include "rules_swap.h"

/* Fields a policy (or the command line) gives, as bits. */
enum ld_decl_bit {
	LD_DECL_FILTER = 1,
	LD_DECL_HOOK   = 2,
	LD_DECL_FAMILY = 4,
};

enum {
	LD_DECL_WHERE_MAX = 512,   /* "path:line" of a declared field */
};

/* What a policy declares, as plain data (no Lua inside). */
struct ld_policy_rules {
	unsigned declared;                      /* enum ld_decl_bit: fields present */
	char     filter[LD_RULES_FILTER_MAX];   /* tcpdump expression ("" = every packet) */
	unsigned hooks;                         /* enum ld_hook_bit mask */
	int      family;                        /* 0 both, 4, 6 */
	char     filter_at[LD_DECL_WHERE_MAX];  /* "policy.lua:3", for messages */
};

/**
 * ld_policy_rules_set() - fill @out from the values the Lua host read
 * @out: cleared, then filled
 * @filter: the filter text, or NULL when not declared
 * @filter_at: "file:line" of the filter (NULL: unknown)
 * @hook: hook names separated by commas, or NULL when not declared
 * @hook_at: "file:line" of the hook field
 * @family: 0, 4 or 6, or -1 when not declared
 *
 * @err: receives "file:line: hook \"x\": ..." when a hook name is unknown
 * @errlen: size of @err
 * Return: 0, or -1 with @err set (unknown hook name, filter too long).
 */
int ld_policy_rules_set(struct ld_policy_rules *out, const char *filter, const char *filter_at,
			const char *hook, const char *hook_at, int family, char *err,
			size_t errlen);

/* The rules of a running `luadivert run`. */
struct ld_divert {
	struct ld_rules_cfg  cmdline;  /* from the options; .filter points into argv */
	unsigned             given;    /* enum ld_decl_bit: given on the command line */
	struct ld_rules_set *cur;      /* installed now (NULL before ld_divert_install) */
};

/**
 * ld_divert_plan() - merge the command line and a policy's declaration, compile
 * @d: the running rules
 * @decl: what the policy declares (NULL: nothing)
 * @out: receives a malloc'd set (free() it, or hand it to ld_divert_swap())
 * @err: receives "file:line: filter \"...\": <libpcap's message>" on failure
 * @errlen: size of @err
 *
 * Touches nothing: a filter that does not compile fails here, before any
 * rule or code changes. Logs which declared fields override the command line.
 * Return: 0, or -1 with @err set.
 */
int ld_divert_plan(const struct ld_divert *d, const struct ld_policy_rules *decl,
		   struct ld_rules_set **out, char *err, size_t errlen);

/**
 * ld_divert_install() - install @s as the first set (luadivert run's start)
 * @d: the running rules; takes ownership of @s on success
 * @s: from ld_divert_plan()
 * @err: receives the reason on failure (nothing is left installed then)
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_divert_install(struct ld_divert *d, struct ld_rules_set *s, char *err, size_t errlen);

/**
 * ld_divert_swap() - replace the installed set by @next (a reload)
 * @d: the running rules
 * @next: from ld_divert_plan(); owned by @d on success, freed by the caller otherwise
 * @changed: if not NULL, receives 1 when the rules changed, 0 when @next equals them
 * @err: receives the reason on failure (the old set is still installed)
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_divert_swap(struct ld_divert *d, struct ld_rules_set *next, int *changed, char *err,
		   size_t errlen);

/**
 * ld_divert_free() - forget the installed set (does not remove any rule)
 * @d: the running rules
 */
void ld_divert_free(struct ld_divert *d);

/**
 * ld_divert_unhook() - stop diverting, keep the chain with the offload rules
 * @d: the running rules
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Issue 16: the offload rules' connmark match keeps conntrack registered
 * in the namespace; removing the last of them unregisters its hooks, and
 * the kernel then drops every packet still queued. At exit, call this
 * first (no new packet is queued), give the queued ones their verdicts,
 * then ld_rules_remove().
 *
 * Return: 0 when the jumps and NFQUEUE rules are gone, 1 when there are no
 * offload rules (remove the rules as usual), -1 with @err set on failure.
 */
int ld_divert_unhook(struct ld_divert *d, char *err, size_t errlen);

#endif /* LD_POLICY_RULES_H */

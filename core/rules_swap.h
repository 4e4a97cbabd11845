/* SPDX-License-Identifier: MIT */
/*
 * rules_swap.h - replace the divert rules of a running queue with another
 * set, one transaction per family, all or nothing across families.
 *
 * A reload that changes the filter, the hooks or the family does not remove
 * and reinstall the rules (packets would bypass the policy, or with
 * --fail-closed be dropped, in between): one "iptables-restore --noflush"
 * per family rewrites the contents of the chain LUADIVERT-Q<n> and adds or
 * deletes only the jumps whose hook changed:
 *
 *   *mangle
 *   :LUADIVERT-Q0 - [0:0]                     (create, or keep, the chain)
 *   -F LUADIVERT-Q0                           (its old rules go ...)
 *   -A LUADIVERT-Q0 -m mark ... -j RETURN     (... the new ones come, same commit)
 *   -A LUADIVERT-Q0 -m bpf ... -j NFQUEUE --queue-num 0 --queue-bypass
 *   -D OUTPUT -j LUADIVERT-Q0                 (a hook the new set leaves)
 *   -A INPUT -j LUADIVERT-Q0                  (a hook it adds)
 *   COMMIT
 *
 * A family the new set no longer diverts loses its jumps and its chain in
 * the same way. Families go one after the other (IPv4, then IPv6); when one
 * fails, the families already swapped are put back to the old set, so the
 * caller sees either the whole new set or the whole old one.
 *
 * In the single-process daemon the worker calls this between two batches
 * (core/reload.c). It holds no state of its own, so a supervisor that owns
 * the rules can call it as is.
 */
#ifndef LD_RULES_SWAP_H
#define LD_RULES_SWAP_H

#include <stddef.h>

#include "rules.h"

enum {
	LD_RULES_FILTER_MAX = 4096,   /* longest filter text a set keeps, NUL included */
	LD_RULES_SWAP_JUMPS_MAX = 16, /* jumps of one queue per family we expect to find */
};

/* One complete, compiled divert rule set of a queue. */
struct ld_rules_set {
	struct ld_rules_cfg  cfg;     /* cfg.filter points at filter[] (or is NULL) */
	struct ld_rules_prog prog;    /* cfg compiled by ld_rules_compile() */
	int   backend;                /* where it is installed; LD_BACKEND_AUTO = not known yet */
	char  filter[LD_RULES_FILTER_MAX];
};

/**
 * ld_rules_set_make() - copy @cfg into @s and compile it
 * @s: set to fill (its backend is copied from cfg->backend when explicit)
 * @cfg: configuration; cfg->filter is copied
 * @err: receives the compiler's message on failure
 * @errlen: size of @err
 *
 * No side effects: this is the "does the new filter compile" step of a
 * reload, done before anything changes.
 * Return: 0, or -1 with @err set (filter too long, or ld_rules_compile()'s
 * reasons).
 */
int ld_rules_set_make(struct ld_rules_set *s, const struct ld_rules_cfg *cfg, char *err,
		      size_t errlen);

/**
 * ld_rules_set_same() - would @a and @b install exactly the same rules?
 * @a: a set
 * @b: another set of the same queue
 *
 * Return: 1 if they render to the same iptables-restore text for both
 * families (so a swap would change nothing), else 0.
 */
int ld_rules_set_same(const struct ld_rules_set *a, const struct ld_rules_set *b);

/**
 * ld_rules_set_describe() - "udp dst port 9000 at output, IPv4 and IPv6"
 * @s: the set
 * @buf: receives the text
 * @len: size of @buf
 *
 * Return: @buf.
 */
const char *ld_rules_set_describe(const struct ld_rules_set *s, char *buf, size_t len);

/**
 * ld_rules_replace() - swap the installed @old set for @next
 * @old: the set installed now (its backend is looked up and cached if unknown)
 * @next: the set to install; same queue as @old; gets @old's backend
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Runs one iptables-restore --noflush per family whose rules differ,
 * taking the installed rules to be @old's (read back with iptables-save
 * only on the first swap, to learn the backend, and when a transaction
 * fails because they were changed by hand; then it is tried once more).
 * On failure the
 * families already swapped are swapped back; if even that fails, @err says
 * so and names `luadivert rules cleanup`. When the two sets are the same
 * nothing runs at all. The caller holds the queue's lock. It forks and
 * waits: the supervisor's event loop calls it.
 *
 * Return: 0 when @next is installed, -1 with @err set when @old still is
 * (or, after a failed roll-back, when neither is reliably).
 */
int ld_rules_replace(struct ld_rules_set *old, struct ld_rules_set *next, char *err,
		     size_t errlen);

#endif /* LD_RULES_SWAP_H */

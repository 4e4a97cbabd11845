// SPDX-License-Identifier: MIT
/*
 * rules_swap.c - replace a queue's installed divert rules with another set
 * in one iptables-restore transaction per family (see rules_swap.h).
 *
 * The script deletes exactly the jumps that exist and are not wanted and
 * adds the missing ones, so a jump that is still wanted is not moved. What
 * exists is taken to be what we installed last (no iptables-save: each
 * run of a tool costs tens of ms, and the worker reads no packet
 * meanwhile); when the transaction fails because someone changed our
 * rules behind our back, what is really there is read back with
 * iptables-save and the swap tried once more.
 */
#include "rules_swap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	NFAM = 2,                 /* [0] IPv4, [1] IPv6 */
	NBACK = 2,                /* [0] nft, [1] legacy */
	LINE_MAX_LEN = 256,       /* a jump line: "-A POSTROUTING -j LUADIVERT-Q65535" */
	RENDER_MAX = 4096,        /* ld_rules_render(): always enough */
	SCRIPT_MAX = 8192,        /* chain rules + jumps to delete and add */
};

/* What one family of one backend holds for our queue. */
struct fam_state {
	int      chain;                                     /* LUADIVERT-Q<n> exists */
	unsigned njumps;
	char     jumps[LD_RULES_SWAP_JUMPS_MAX][LINE_MAX_LEN]; /* "-A HOOK -j LUADIVERT-Q<n>" */
};

struct installed {
	unsigned queue;
	int      overflow;                 /* more jumps than we keep */
	struct fam_state st[NBACK][NFAM];
};

static void swap_err(char *err, size_t errlen, const char *msg, const char *detail)
{
	snprintf(err, errlen, "%s%s", msg, detail ? detail : "");
}

int ld_rules_set_make(struct ld_rules_set *s, const struct ld_rules_cfg *cfg, char *err,
		      size_t errlen)
{
	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	s->cfg.filter = NULL;
	if (cfg->filter) {
		if (strlen(cfg->filter) >= sizeof s->filter) {
			snprintf(err, errlen, "filter is longer than %d bytes", LD_RULES_FILTER_MAX - 1);
			return -1;
		}
		snprintf(s->filter, sizeof s->filter, "%s", cfg->filter);
		s->cfg.filter = s->filter;
	}
	if (!s->cfg.hooks)
		s->cfg.hooks = LD_HOOK_DEFAULT;
	s->backend = cfg->backend;
	return ld_rules_compile(&s->cfg, &s->prog, err, errlen);
}

/* One family's rendered restore text, "" when the set has no rule for it. */
static int render(const struct ld_rules_set *s, int fi, char *buf, size_t len)
{
	struct ld_rules_prog p = s->prog;

	/* a kernel without IPv6 gets no IPv6 rules (as ld_rules_install() does),
	 * not even the chain that only holds the offload rules */
	if (fi == 1 && access("/proc/sys/net/ipv6", F_OK) != 0) {
		if (len)
			buf[0] = '\0';
		return len ? 0 : -1;
	}
	return ld_rules_render(&s->cfg, &p, fi ? 6 : 4, buf, len);
}

int ld_rules_set_same(const struct ld_rules_set *a, const struct ld_rules_set *b)
{
	char ra[RENDER_MAX], rb[RENDER_MAX];
	int fi;

	if (a->cfg.queue != b->cfg.queue)
		return 0;
	for (fi = 0; fi < NFAM; fi++) {
		if (render(a, fi, ra, sizeof ra) < 0 || render(b, fi, rb, sizeof rb) < 0 ||
		    strcmp(ra, rb) != 0)
			return 0;
	}
	return 1;
}

const char *ld_rules_set_describe(const struct ld_rules_set *s, char *buf, size_t len)
{
	char hooks[64];
	const char *fam = s->prog.families == LD_RULES_V4 ? "IPv4" :
			  s->prog.families == LD_RULES_V6 ? "IPv6" : "IPv4 and IPv6";

	snprintf(buf, len, "%s%s%s at %s, %s%s", s->cfg.filter && s->cfg.filter[0] ? "\"" : "",
		 s->cfg.filter && s->cfg.filter[0] ? s->cfg.filter : "every packet",
		 s->cfg.filter && s->cfg.filter[0] ? "\"" : "",
		 ld_rules_hook_names(s->cfg.hooks, hooks, sizeof hooks), fam,
		 s->cfg.fail_closed ? " (fail-closed)" : "");
	return buf;
}

/* ------------------------------------------------------ what is there now */

static void add_jump(struct fam_state *st, const char *line, int *overflow)
{
	if (st->njumps >= LD_RULES_SWAP_JUMPS_MAX || strlen(line) >= LINE_MAX_LEN) {
		*overflow = 1;
		return;
	}
	snprintf(st->jumps[st->njumps++], LINE_MAX_LEN, "%s", line);
}

static void installed_item(void *ctx, int backend, int family, const char *table, unsigned queue,
		      int item, const char *line)
{
	struct installed *in = ctx;
	struct fam_state *st = &in->st[backend == LD_BACKEND_LEGACY][family == 6];

	if (queue != in->queue || strcmp(table, "mangle") != 0)
		return;
	if (item == LD_RULES_ITEM_CHAIN)
		st->chain = 1;
	else if (item == LD_RULES_ITEM_JUMP)
		add_jump(st, line, &in->overflow);
}

/* The state a rendered set leaves behind: its chain and exactly its jumps. */
static void state_of_render(const char *text, const char *chain, struct fam_state *st)
{
	size_t clen = strlen(chain);
	const char *line = text;
	int overflow = 0;

	memset(st, 0, sizeof *st);
	st->chain = text[0] != '\0';
	while (line && *line) {
		size_t n = strcspn(line, "\n");
		char buf[LINE_MAX_LEN];

		if (n > 3 && n < sizeof buf && strncmp(line, "-A ", 3) == 0 &&
		    !(strncmp(line + 3, chain, clen) == 0 && line[3 + clen] == ' ')) {
			snprintf(buf, sizeof buf, "%.*s", (int)n, line);
			add_jump(st, buf, &overflow);
		}
		line = line[n] ? line + n + 1 : NULL;
	}
}

static int has_jump(const struct fam_state *st, const char *line)
{
	unsigned i;

	for (i = 0; i < st->njumps; i++)
		if (strcmp(st->jumps[i], line) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- scripts */

static int __attribute__((format(printf, 4, 5))) append(char *buf, size_t len, size_t *used,
								const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *used)
		return -1;
	*used += (size_t)n;
	return 0;
}

/*
 * The restore input that takes one family from @now to the rendered @want
 * ("" = no rules for this family). Return its length, 0 when there is
 * nothing to do (no rules wanted, none there), -1 when it does not fit.
 */
static long swap_script(const char *chain, const struct fam_state *now, const char *want,
			char *buf, size_t len)
{
	struct fam_state target;
	size_t used = 0, clen = strlen(chain);
	const char *line;
	unsigned i;
	int r = 0;

	state_of_render(want, chain, &target);
	if (!now->chain && !target.chain && now->njumps == 0)
		return 0;
	r |= append(buf, len, &used, "*mangle\n");
	if (target.chain) {
		/* declaring the chain creates it; -F empties it if it was there */
		r |= append(buf, len, &used, ":%s - [0:0]\n-F %s\n", chain, chain);
		for (line = want; *line; ) {
			int n = (int)strcspn(line, "\n");

			if (strncmp(line, "-A ", 3) == 0 && strncmp(line + 3, chain, clen) == 0 &&
			    line[3 + clen] == ' ')
				r |= append(buf, len, &used, "%.*s\n", n, line);
			line += n + (line[n] != '\0');
		}
	}
	for (i = 0; i < now->njumps; i++)
		if (!has_jump(&target, now->jumps[i]))
			r |= append(buf, len, &used, "-D%s\n", now->jumps[i] + 2);
	for (i = 0; i < target.njumps; i++)
		if (!has_jump(now, target.jumps[i]))
			r |= append(buf, len, &used, "%s\n", target.jumps[i]);
	if (!target.chain && now->chain)
		r |= append(buf, len, &used, "-F %s\n-X %s\n", chain, chain);
	r |= append(buf, len, &used, "COMMIT\n");
	return r < 0 ? -1 : (long)used;
}

/* Same chain presence and the same jumps (in any order)? */
static int state_equal(const struct fam_state *a, const struct fam_state *b)
{
	unsigned i;

	if (a->chain != b->chain || a->njumps != b->njumps)
		return 0;
	for (i = 0; i < a->njumps; i++)
		if (!has_jump(b, a->jumps[i]))
			return 0;
	return 1;
}

/* Take one family from @now to @want. Return 0 or -1 with @err set. */
static int swap_family(int backend, int fi, const char *chain, const struct fam_state *now,
		       const char *want, char *err, size_t errlen)
{
	char *script = malloc(SCRIPT_MAX);
	long n;
	int rc = 0;

	if (!script) {
		swap_err(err, errlen, "out of memory", NULL);
		return -1;
	}
	n = swap_script(chain, now, want, script, SCRIPT_MAX);
	if (n < 0) {
		swap_err(err, errlen, "the rule swap does not fit in its buffer", NULL);
		rc = -1;
	} else if (n > 0) {
		rc = ld_rules_restore(backend, fi ? 6 : 4, script, (size_t)n, err, errlen);
	}
	free(script);
	return rc;
}

/* Which backend holds the queue's rules: the one with its chain, else the resolved one. */
static int pick_backend(const struct ld_rules_set *old, const struct installed *in, char *err,
			size_t errlen)
{
	int bi;

	if (old->backend == LD_BACKEND_NFT || old->backend == LD_BACKEND_LEGACY)
		return old->backend;
	for (bi = 0; bi < NBACK; bi++)
		if (in->st[bi][0].chain || in->st[bi][1].chain)
			return bi ? LD_BACKEND_LEGACY : LD_BACKEND_NFT;
	return ld_rules_backend_resolve(old->cfg.backend, err, errlen);
}

/* Read what the queue's chain and jumps are now (in->st), for @backend or both. */
static int scan_installed(struct installed *in, int backend, char *err, size_t errlen)
{
	unsigned queue = in->queue;

	memset(in, 0, sizeof *in);
	in->queue = queue;
	if (ld_rules_scan(backend, installed_item, in, err, errlen) < 0)
		return -1;
	if (in->overflow) {
		snprintf(err, errlen, "more than %d jumps to LUADIVERT-Q%u: not ours to sort out "
			 "(`luadivert rules list`)", LD_RULES_SWAP_JUMPS_MAX, queue);
		return -1;
	}
	return 0;
}

int ld_rules_replace(struct ld_rules_set *old, struct ld_rules_set *next, char *err,
		     size_t errlen)
{
	char chain[LD_RULES_CHAIN_MAX], want[NFAM][RENDER_MAX], back[NFAM][RENDER_MAX];
	struct installed *in;
	int backend, bi, fi, done = 0, scanned = 0, rc = -1;

	if (old->cfg.queue != next->cfg.queue) {
		swap_err(err, errlen, "ld_rules_replace: the two sets are for different queues", NULL);
		return -1;
	}
	if (ld_rules_set_same(old, next)) {
		next->backend = old->backend;
		return 0;
	}
	for (fi = 0; fi < NFAM; fi++)
		if (render(next, fi, want[fi], RENDER_MAX) < 0 ||
		    render(old, fi, back[fi], RENDER_MAX) < 0) {
			swap_err(err, errlen, "the rules do not fit in the render buffer", NULL);
			return -1;
		}
	if (!next->cfg.unhooked && !(next->prog.families & LD_RULES_V4) &&
	    access("/proc/sys/net/ipv6", F_OK) != 0) {
		swap_err(err, errlen, "IPv6 is disabled on this system and the filter matches "
			"only IPv6 packets", NULL);
		return -1;
	}
	in = calloc(1, sizeof *in);
	if (!in) {
		swap_err(err, errlen, "out of memory", NULL);
		return -1;
	}
	in->queue = old->cfg.queue;
	ld_rules_chain_name(old->cfg.queue, chain, sizeof chain);
	/* the first swap finds out which backend ld_rules_install() chose */
	if (old->backend != LD_BACKEND_NFT && old->backend != LD_BACKEND_LEGACY) {
		if (scan_installed(in, LD_BACKEND_AUTO, err, errlen) < 0)
			goto out;
		scanned = 1;
	}
	backend = pick_backend(old, in, err, errlen);
	if (backend < 0)
		goto out;
	old->backend = backend;
	bi = backend == LD_BACKEND_LEGACY;
	if (!scanned) {
		/* what we installed last, without an iptables-save (each costs a fork+exec) */
		for (fi = 0; fi < NFAM; fi++)
			state_of_render(back[fi], chain, &in->st[bi][fi]);
	}

	for (fi = 0; fi < NFAM; fi++) {
		struct fam_state target;
		char e[1024];
		int r;

		/* a family whose rules do not change is not touched */
		state_of_render(want[fi], chain, &target);
		if (strcmp(want[fi], back[fi]) == 0 && state_equal(&in->st[bi][fi], &target))
			continue;
		r = swap_family(backend, fi, chain, &in->st[bi][fi], want[fi], e, sizeof e);
		if (r < 0 && !scanned) {
			/*
			 * Someone changed our rules behind our back (a jump
			 * deleted by hand makes -D fail): read what is really
			 * there and try once more.
			 */
			scanned = 1;
			if (scan_installed(in, backend, e, sizeof e) == 0)
				r = swap_family(backend, fi, chain, &in->st[bi][fi], want[fi], e,
						sizeof e);
		}
		if (r == 0) {
			done |= 1 << fi;
			continue;
		}
		/* put back what already changed: the caller keeps running the old set */
		snprintf(err, errlen, "swapping the IPv%d rules: %s", fi ? 6 : 4, e);
		for (int fj = 0; fj < fi; fj++) {
			struct fam_state now;
			char e2[512];

			if (!(done & (1 << fj)))
				continue;
			state_of_render(want[fj], chain, &now);
			if (swap_family(backend, fj, chain, &now, back[fj], e2, sizeof e2) < 0) {
				size_t l = strlen(err);

				snprintf(err + l, errlen - l, "; putting the IPv%d rules back failed too "
					 "(%s): stop luadivert or run `luadivert rules cleanup --queue %u`",
					 fj ? 6 : 4, e2, (unsigned)old->cfg.queue);
			}
		}
		goto out;
	}
	next->backend = backend;
	rc = 0;
out:
	free(in);
	return rc;
}

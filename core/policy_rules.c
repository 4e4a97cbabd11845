// SPDX-License-Identifier: MIT
/*
 * policy_rules.c - a policy's declared divert rules, merged with the
 * command line, compiled, installed at start and swapped on reload.
 */
#include "policy_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "offload.h"

int ld_policy_rules_set(struct ld_policy_rules *out, const char *filter, const char *filter_at,
			const char *hook, const char *hook_at, int family, char *err,
			size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (filter) {
		if (strlen(filter) >= sizeof out->filter) {
			snprintf(err, errlen, "%s: filter is longer than %d bytes",
				 filter_at ? filter_at : "policy", LD_RULES_FILTER_MAX - 1);
			return -1;
		}
		snprintf(out->filter, sizeof out->filter, "%s", filter);
		snprintf(out->filter_at, sizeof out->filter_at, "%s", filter_at ? filter_at : "policy");
		out->declared |= LD_DECL_FILTER;
	}
	if (hook) {
		if (ld_rules_parse_hook(hook, &out->hooks) < 0) {
			snprintf(err, errlen, "%s: hook \"%s\": use prerouting, input, forward, output, "
				 "postrouting or all (a name or a list of names)",
				 hook_at ? hook_at : "policy", hook);
			return -1;
		}
		out->declared |= LD_DECL_HOOK;
	}
	if (family >= 0) {
		if (family != 0 && family != 4 && family != 6) {
			snprintf(err, errlen, "family %d: use 4, 6 or \"both\"", family);
			return -1;
		}
		out->family = family;
		out->declared |= LD_DECL_FAMILY;
	}
	return 0;
}

/* Log, once per plan, each command-line option a declaration overrides. */
static void log_overrides(const struct ld_divert *d, const struct ld_policy_rules *decl)
{
	unsigned both = d->given & decl->declared;
	char names[64];

	if (both & LD_DECL_FILTER)
		ld_log("queue %u: the policy's filter \"%s\" overrides --filter \"%s\"",
		       d->cmdline.queue, decl->filter, d->cmdline.filter ? d->cmdline.filter : "");
	if (both & LD_DECL_HOOK)
		ld_log("queue %u: the policy's hook %s overrides --hook", d->cmdline.queue,
		       ld_rules_hook_names(decl->hooks, names, sizeof names));
	if (both & LD_DECL_FAMILY)
		ld_log("queue %u: the policy's family %s overrides --family %d", d->cmdline.queue,
		       decl->family ? (decl->family == 4 ? "4" : "6") : "both", d->cmdline.family);
}

int ld_divert_plan(const struct ld_divert *d, const struct ld_policy_rules *decl,
		   struct ld_rules_set **out, char *err, size_t errlen)
{
	struct ld_rules_cfg cfg = d->cmdline;
	struct ld_rules_set *s;
	char e[1200];

	*out = NULL;
	if (decl) {
		if (decl->declared & LD_DECL_FILTER)
			cfg.filter = decl->filter;
		if (decl->declared & LD_DECL_HOOK)
			cfg.hooks = decl->hooks;
		if (decl->declared & LD_DECL_FAMILY)
			cfg.family = decl->family;
	}
	/* issue 16: a reload's rules match the next offload generation, so the
	 * flows offloaded under the old policy come back to the queue */
	if (cfg.offload_gen && d->cur && d->cur->cfg.offload_gen)
		cfg.offload_gen = ld_offload_gen_next(d->cur->cfg.offload_gen);
	s = malloc(sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (ld_rules_set_make(s, &cfg, e, sizeof e) < 0) {
		/* name where the filter came from: the policy's line, or --filter */
		if (decl && (decl->declared & LD_DECL_FILTER))
			snprintf(err, errlen, "%s: filter: %s", decl->filter_at, e);
		else
			snprintf(err, errlen, "%s", e);
		free(s);
		return -1;
	}
	if (decl)
		log_overrides(d, decl);
	*out = s;
	return 0;
}

int ld_divert_install(struct ld_divert *d, struct ld_rules_set *s, char *err, size_t errlen)
{
	if (ld_rules_install(&s->cfg, err, errlen) < 0)
		return -1;
	free(d->cur);
	d->cur = s;
	return 0;
}

/* Same rules apart from the offload generation (a reload always moves that)? */
static int rules_same_but_gen(const struct ld_rules_set *a, const struct ld_rules_set *b)
{
	struct ld_rules_set *t = malloc(sizeof *t);
	int same;

	if (!t)
		return 0;
	*t = *b;
	t->cfg.filter = b->cfg.filter ? t->filter : NULL;
	t->cfg.offload_gen = a->cfg.offload_gen;
	same = ld_rules_set_same(a, t);
	free(t);
	return same;
}

int ld_divert_swap(struct ld_divert *d, struct ld_rules_set *next, int *changed, char *err,
		   size_t errlen)
{
	int same;

	if (!d->cur) {
		snprintf(err, errlen, "no divert rules installed to swap");
		return -1;
	}
	same = rules_same_but_gen(d->cur, next);
	if (ld_rules_replace(d->cur, next, err, errlen) < 0)
		return -1;
	if (changed)
		*changed = !same;
	free(d->cur);
	d->cur = next;
	return 0;
}

int ld_divert_unhook(struct ld_divert *d, char *err, size_t errlen)
{
	struct ld_rules_set *next;

	if (!d->cur || !d->cur->cfg.offload_gen)
		return 1;
	next = malloc(sizeof *next);
	if (!next) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*next = *d->cur;
	next->cfg.filter = d->cur->cfg.filter ? next->filter : NULL;
	next->cfg.unhooked = 1;
	if (ld_rules_replace(d->cur, next, err, errlen) < 0) {
		free(next);
		return -1;
	}
	free(d->cur);
	d->cur = next;
	return 0;
}

void ld_divert_free(struct ld_divert *d)
{
	free(d->cur);
	d->cur = NULL;
}

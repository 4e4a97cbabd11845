// SPDX-License-Identifier: MIT
/*
 * rules.c - install the iptables/ip6tables rules that divert matching
 * packets to a queue (rules_priv.h names the other parts: compiling the
 * filter, reading and removing what is installed).
 *
 * Everything luadivert installs lives in chains named LUADIVERT-Q<queue>
 * in the mangle table, so that finding it again needs no state file: we
 * read iptables-save and pick out those chains and the jumps to them. That
 * is also how a crashed instance's rules are found and removed.
 *
 * Both backends read and write through their own iptables-save/-restore:
 *
 *   backend   IPv4                         IPv6
 *   nft       iptables-nft-{save,restore}   ip6tables-nft-{save,restore}
 *   legacy    iptables-legacy-{save,...}    ip6tables-legacy-{save,...}
 *
 * Installing is one "iptables-restore --noflush" per family, so a family's
 * rules appear all at once or not at all.
 */
#include "rules_priv.h"
#include "offload.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------ small helpers */

void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap : 1024;
			char *np;

			while (cap < b->len + (size_t)n + 1)
				cap *= 2;
			np = realloc(b->p, cap);
			if (!np) {
				b->oom = 1;
				return;
			}
			b->p = np;
			b->cap = cap;
		}
	}
}

void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ install */

static int resolve(int backend, struct snapshot snap[NBACKENDS][NFAMILIES], char *err,
		   size_t errlen)
{
	int have[NBACKENDS], rules[NBACKENDS] = { 0, 0 };
	int bi, fi;

	for (bi = 0; bi < NBACKENDS; bi++) {
		/* ld_rules_backend_resolve() reads no snapshot for an explicit backend */
		have[bi] = rules_backend_present(bi) &&
			   (backend != LD_BACKEND_AUTO || snap[bi][0].present);
		for (fi = 0; fi < NFAMILIES; fi++)
			if (snap[bi][fi].text && rules_has_rules(snap[bi][fi].text))
				rules[bi] = 1;
	}
	if (backend == LD_BACKEND_NFT || backend == LD_BACKEND_LEGACY) {
		bi = backend_index(backend);
		if (!have[bi]) {
			set_err(err, errlen, "backend %s: %s/%s not found (install iptables)",
				ld_rules_backend_name(backend), restore_prog[bi][0], restore_prog[bi][1]);
			return -1;
		}
		return backend;
	}
	/* auto: whatever already manages this namespace's firewall; nft otherwise */
	if (have[1] && rules[1] && !rules[0])
		return LD_BACKEND_LEGACY;
	if (have[0])
		return LD_BACKEND_NFT;
	if (have[1])
		return LD_BACKEND_LEGACY;
	set_err(err, errlen, "neither iptables-nft nor iptables-legacy (with ip6tables and "
		"-save/-restore) found: install iptables");
	return -1;
}

static void snapshots_free(struct snapshot snap[NBACKENDS][NFAMILIES])
{
	int bi, fi;

	for (bi = 0; bi < NBACKENDS; bi++)
		for (fi = 0; fi < NFAMILIES; fi++) {
			free(snap[bi][fi].text);
			snap[bi][fi].text = NULL;
		}
}

static int snapshots_read(struct snapshot snap[NBACKENDS][NFAMILIES], char *err, size_t errlen)
{
	int bi, fi;

	memset(snap, 0, sizeof(struct snapshot) * NBACKENDS * NFAMILIES);
	for (bi = 0; bi < NBACKENDS; bi++)
		for (fi = 0; fi < NFAMILIES; fi++)
			if (rules_snapshot_read(bi, fi, &snap[bi][fi], err, errlen) < 0) {
				snapshots_free(snap);
				return -1;
			}
	return 0;
}

int ld_rules_backend_resolve(int backend, char *err, size_t errlen)
{
	struct snapshot snap[NBACKENDS][NFAMILIES];
	int rc;

	if (backend == LD_BACKEND_NFT || backend == LD_BACKEND_LEGACY) {
		memset(snap, 0, sizeof snap);
		return resolve(backend, snap, err, errlen);
	}
	if (snapshots_read(snap, err, errlen) < 0)
		return -1;
	rc = resolve(backend, snap, err, errlen);
	snapshots_free(snap);
	return rc;
}

void ld_rules_filter_comment(const char *tag, const char *filter, char *out, size_t len)
{
	size_t used;
	int n;

	n = snprintf(out, len, "%s%s%s", tag ? tag : "", tag ? "; " : "", LD_RULES_COMMENT_PREFIX);
	used = n > 0 ? (size_t)n : 0;
	if (rules_filter_empty(filter)) {
		snprintf(out + used, len - used, "(none)");
		return;
	}
	while (*filter && isspace((unsigned char)*filter))
		filter++;
	for (; *filter && used + 1 < len; filter++) {
		unsigned char c = (unsigned char)*filter;

		/* nothing that needs quoting inside iptables-restore's "..." */
		out[used++] = c == '"' || c == '\\' ? '\'' : c < 0x20 || c > 0x7e ? ' ' : (char)c;
	}
	while (used > 0 && out[used - 1] == ' ')
		used--;
	if (*filter && len > 4) {
		used = used > len - 4 ? len - 4 : used;
		memcpy(out + used, "...", 3);
		used += 3;
	}
	out[used] = '\0';
}

int ld_rules_restore(int backend, int family, const char *script, size_t len, char *err,
		     size_t errlen)
{
	if ((backend != LD_BACKEND_NFT && backend != LD_BACKEND_LEGACY) ||
	    (family != 4 && family != 6)) {
		set_err(err, errlen, "ld_rules_restore: invalid backend %d or family %d", backend,
			family);
		return -1;
	}
	return rules_run_restore(backend_index(backend), family == 6, script, len, err, errlen);
}

/*
 * The iptables-restore --noflush input that installs one family. A family
 * the filter cannot match gets, with offload rules, the chain without the
 * NFQUEUE rule and the jumps (rules.h, ld_rules_render()).
 */
static void install_script(const struct ld_rules_cfg *cfg, const struct ld_rules_prog *prog,
			   int fi, unsigned hooks, struct sbuf *b)
{
	char chain[LD_RULES_CHAIN_MAX], comment[LD_RULES_COMMENT_MAX];
	int divert = !cfg->unhooked && (prog->families & (1u << fi));
	unsigned i;

	ld_rules_chain_name(cfg->queue, chain, sizeof chain);
	sb_add(b, "*%s\n:%s - [0:0]\n", rules_table, chain);
	if (cfg->skip_mark)
		sb_add(b, "-A %s -m mark --mark 0x%x/0x%x -j RETURN\n", chain,
		       (unsigned)cfg->skip_mark, (unsigned)cfg->skip_mark);
	if (cfg->offload_gen) {
		char off[LD_OFFLOAD_RULES_MAX];

		if (ld_offload_render_rules(chain, cfg->offload_gen, off, sizeof off) < 0)
			b->oom = 1;   /* an invalid generation: render nothing usable */
		else
			sb_add(b, "%s", off);
	}
	if (!divert) {
		sb_add(b, "COMMIT\n");
		return;
	}
	sb_add(b, "-A %s", chain);
	if (prog->ninsn[fi])
		sb_add(b, " -m bpf --bytecode \"%s\"", prog->bytecode[fi]);
	/* the filter's text, for `rules list`: the bytecode alone says little;
	 * `rules add` puts its tag in front */
	ld_rules_filter_comment(cfg->comment, cfg->filter, comment, sizeof comment);
	sb_add(b, " -m comment --comment \"%s\"", comment);
	if (cfg->queues > 1)   /* issue 16: the kernel spreads flows over the workers' queues */
		sb_add(b, " -j NFQUEUE --queue-balance %u:%u%s%s\n", (unsigned)cfg->queue,
		       (unsigned)cfg->queue + cfg->queues - 1u,
		       cfg->cpu_fanout ? " --queue-cpu-fanout" : "",
		       cfg->fail_closed ? "" : " --queue-bypass");
	else
		sb_add(b, " -j NFQUEUE --queue-num %u%s\n", (unsigned)cfg->queue,
		       cfg->fail_closed ? "" : " --queue-bypass");
	for (i = 0; i < sizeof hook_chains / sizeof hook_chains[0]; i++)
		if (hooks & (1u << i))
			sb_add(b, "-A %s -j %s\n", hook_chains[i], chain);
	sb_add(b, "COMMIT\n");
}

int ld_rules_render(const struct ld_rules_cfg *cfg, const struct ld_rules_prog *prog,
		    int family, char *buf, size_t len)
{
	struct sbuf b = { 0 };
	int fi = family == 6;

	if ((family != 4 && family != 6) || len == 0)
		return -1;
	buf[0] = '\0';
	if (!(prog->families & (1u << fi)) && !cfg->offload_gen)
		return 0;
	install_script(cfg, prog, fi, cfg->hooks ? cfg->hooks : (unsigned)LD_HOOK_DEFAULT, &b);
	if (b.oom || b.len >= len) {
		sb_free(&b);
		return -1;
	}
	memcpy(buf, b.p, b.len + 1);
	sb_free(&b);
	return 0;
}

int ld_rules_install(const struct ld_rules_cfg *cfg, char *err, size_t errlen)
{
	struct snapshot snap[NBACKENDS][NFAMILIES];
	struct ld_rules_prog *prog;
	unsigned hooks = cfg->hooks ? cfg->hooks : (unsigned)LD_HOOK_DEFAULT;
	int backend, bi, fi, rc = -1, v6 = 1;

	prog = malloc(sizeof *prog);
	if (!prog) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (ld_rules_compile(cfg, prog, err, errlen) < 0) {
		free(prog);
		return -1;
	}
	if (!rules_ipv6_enabled()) {
		prog->families &= ~(unsigned)LD_RULES_V6;
		v6 = 0;
		if (!prog->families) {
			set_err(err, errlen, "IPv6 is disabled on this system and the filter matches "
				"only IPv6 packets");
			free(prog);
			return -1;
		}
	}
	if (snapshots_read(snap, err, errlen) < 0) {
		free(prog);
		return -1;
	}
	backend = resolve(cfg->backend, snap, err, errlen);
	if (backend < 0)
		goto out;
	/* we hold the queue's lock: anything of this queue is a dead instance's */
	for (bi = 0; bi < NBACKENDS; bi++)
		for (fi = 0; fi < NFAMILIES; fi++)
			if (rules_remove_from(bi, fi, &snap[bi][fi], cfg->queue, NULL, NULL, err, errlen) < 0)
				goto out;

	bi = backend_index(backend);
	for (fi = 0; fi < NFAMILIES; fi++) {
		struct sbuf script = { 0 };
		int r;

		/* with offload rules every family the kernel has gets the chain */
		if (!(prog->families & (1u << fi)) && !(cfg->offload_gen && (fi == 0 || v6)))
			continue;
		install_script(cfg, prog, fi, hooks, &script);
		if (script.oom) {
			set_err(err, errlen, "out of memory");
			r = -1;
		} else {
			r = rules_run_restore(bi, fi, script.p, script.len, err, errlen);
		}
		sb_free(&script);
		if (r < 0) {
			char e2[256];

			/* roll back the family that went in before this one */
			(void)ld_rules_cleanup(cfg->queue, backend, NULL, NULL, e2, sizeof e2);
			goto out;
		}
	}
	rc = 0;
out:
	snapshots_free(snap);
	free(prog);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * rules_save.c - what iptables-save shows (rules_priv.h): a snapshot per
 * back-end and family, luadivert's chains and the jumps to them found in
 * it, the removal script that takes them out, and listing.
 */
#include "rules_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------ reading what is there */

/*
 * Is @s (of length @n) "LUADIVERT-Q<n>" in canonical form (what
 * ld_rules_chain_name makes: no sign, no leading zero, <= 65535)?
 * Return the queue, or -1.
 */
static long chain_queue(const char *s, size_t n)
{
	const size_t plen = sizeof LD_RULES_CHAIN_PREFIX - 1;
	long v = 0;
	size_t i;

	if (n <= plen || n > plen + 5 || strncmp(s, LD_RULES_CHAIN_PREFIX, plen) != 0)
		return -1;
	if (s[plen] == '0' && n > plen + 1)
		return -1;
	for (i = plen; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535 ? v : -1;
}

static int legacy_has_tables(int fi)
{
	FILE *f = fopen(legacy_names[fi], "re");
	int c;

	if (!f)
		return 0;   /* x_tables of this family never used here */
	c = fgetc(f);
	fclose(f);
	return c != EOF;
}

/* IPv6 can be off (ipv6.disable=1): then there are no ip6tables rules to manage. */
int rules_ipv6_enabled(void)
{
	return access("/proc/sys/net/ipv6", F_OK) == 0;
}

/*
 * Did a -save fail because this kernel lacks the backend altogether
 * (nf_tables or x_tables not built)? Then it cannot hold any rule of ours.
 */
static int backend_missing_in_kernel(const char *msg)
{
	return strstr(msg, "Protocol not supported") || strstr(msg, "Failed to initialize nft") ||
	       strstr(msg, "do you need to insmod");
}

int rules_backend_present(int bi)
{
	char path[PATH_BUF];
	int fi;

	for (fi = 0; fi < NFAMILIES; fi++)
		if (ld_rules_find_program(save_prog[bi][fi], path, sizeof path) < 0 ||
		    ld_rules_find_program(restore_prog[bi][fi], path, sizeof path) < 0)
			return 0;
	return 1;
}

/* Read one backend+family. Return 0 (snapshot filled, maybe absent) or -1. */
int rules_snapshot_read(int bi, int fi, struct snapshot *s, char *err, size_t errlen)
{
	char path[PATH_BUF];
	char *argv[2];
	struct ld_rules_out out;

	s->present = 0;
	s->text = NULL;
	if (fi == 1 && !rules_ipv6_enabled())
		return 0;
	if (ld_rules_find_program(save_prog[bi][fi], path, sizeof path) < 0)
		return 0;
	s->present = 1;
	/* legacy: reading a table that does not exist yet would create it */
	if (bi == 1 && !legacy_has_tables(fi)) {
		s->text = strdup("");
		if (!s->text) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	argv[0] = path;
	argv[1] = NULL;
	if (ld_rules_exec(path, argv, NULL, 0, &out, err, errlen) < 0)
		return -1;
	if (out.status != 0) {
		int missing = backend_missing_in_kernel(out.err);

		set_err(err, errlen, "%s failed (exit %d): %s", save_prog[bi][fi], out.status,
			out.err[0] ? out.err : "no message");
		ld_rules_out_free(&out);
		if (missing) {
			s->present = 0;   /* absent, like a program that is not installed */
			return 0;
		}
		return -1;
	}
	s->text = out.out;   /* keep stdout, drop stderr (e.g. the legacy-tables warning) */
	free(out.err);
	return 0;
}

/*
 * Walk one iptables-save text, calling @fn for every luadivert item, with
 * the line NUL-terminated in place (the text is restored afterwards).
 */
typedef void item_fn(void *ctx, const char *table, unsigned queue, int item, const char *line,
		     size_t linelen);

static int walk_save(char *text, item_fn *fn, void *ctx)
{
	char table[64] = "";
	char *line = text;
	int n = 0;

	while (line && *line) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		long q = -1;
		int item = 0;

		if (line[0] == '*') {
			snprintf(table, sizeof table, "%.*s", (int)(len - 1), line + 1);
		} else if (line[0] == ':') {
			size_t nlen = strcspn(line + 1, " \n");

			q = chain_queue(line + 1, nlen);
			item = LD_RULES_ITEM_CHAIN;
		} else if (len > 3 && strncmp(line, "-A ", 3) == 0) {
			const char *ch = line + 3;
			size_t clen = strcspn(ch, " \n");

			q = chain_queue(ch, clen);
			item = LD_RULES_ITEM_RULE;
			if (q < 0) {
				/*
				 * A jump or goto to one of our chains. iptables-save
				 * prints a user-chain target last, with no options:
				 * "... -j NAME" ends the line (a comment containing
				 * the text would end with its closing quote).
				 */
				const char *sp = line + len;

				while (sp > ch && sp[-1] != ' ')
					sp--;
				if (sp - ch >= 4 && sp[-4] == ' ' && sp[-3] == '-' &&
				    (sp[-2] == 'j' || sp[-2] == 'g'))
					q = chain_queue(sp, (size_t)(line + len - sp));
				item = LD_RULES_ITEM_JUMP;
			}
		}
		if (q >= 0 && table[0]) {
			char save = line[len];

			line[len] = '\0';
			fn(ctx, table, (unsigned)q, item, line, len);
			line[len] = save;
			n++;
		}
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

/* Does this save text hold any rule or user chain at all? */
int rules_has_rules(const char *text)
{
	const char *line = text;

	while (line && *line) {
		if (strncmp(line, "-A ", 3) == 0)
			return 1;
		if (line[0] == ':') {
			const char *sp = strchr(line, ' ');

			if (sp && sp[1] == '-')   /* user chains have no policy: ":NAME - [0:0]" */
				return 1;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return 0;
}

/* ---------------------------------------------------------- removal scripts */

struct removal {
	int   queue;              /* -1: every queue */
	ld_rules_keep_fn *keep;
	void *keep_ctx;
	struct sbuf script;       /* what iptables-restore --noflush gets */
	struct sbuf chains;       /* -F/-X lines of the current table, emitted at its end */
	char  table[64];          /* table whose block is open in script */
	int   nchains;
	/* keep() answers per queue, asked once each */
	unsigned char asked[65536 / 8];
	unsigned char kept[65536 / 8];
};

static int removal_wants(struct removal *r, unsigned q)
{
	unsigned char bit = (unsigned char)(1u << (q & 7));

	if (r->queue >= 0 && (unsigned)r->queue != q)
		return 0;
	if (!r->keep)
		return 1;
	if (!(r->asked[q >> 3] & bit)) {
		r->asked[q >> 3] |= bit;
		if (r->keep(r->keep_ctx, q))
			r->kept[q >> 3] |= bit;
	}
	return !(r->kept[q >> 3] & bit);
}

static void removal_close_table(struct removal *r)
{
	if (!r->table[0])
		return;
	if (r->chains.len)
		sb_add(&r->script, "%s", r->chains.p);
	sb_add(&r->script, "COMMIT\n");
	r->chains.len = 0;
	if (r->chains.p)
		r->chains.p[0] = '\0';
	r->table[0] = '\0';
}

static void removal_item(void *ctx, const char *table, unsigned q, int item, const char *line,
			 size_t len)
{
	struct removal *r = ctx;

	(void)len;
	if (item == LD_RULES_ITEM_RULE || !removal_wants(r, q))
		return;   /* a chain's own rules go with its flush */
	if (strcmp(r->table, table) != 0) {
		removal_close_table(r);
		snprintf(r->table, sizeof r->table, "%s", table);
		sb_add(&r->script, "*%s\n", table);
	}
	if (item == LD_RULES_ITEM_JUMP) {
		/* "-A CHAIN spec" as saved is exactly what "-D CHAIN spec" needs */
		sb_add(&r->script, "-D%s\n", line + 2);
	} else {
		char name[LD_RULES_CHAIN_MAX];

		ld_rules_chain_name((uint16_t)q, name, sizeof name);
		sb_add(&r->chains, "-F %s\n-X %s\n", name, name);
		r->nchains++;
	}
}

/* Quote line N of @script into @buf when @msg says "line N failed". */
static void failing_line(const char *msg, const char *script, char *buf, size_t len)
{
	const char *p = strstr(msg, "line ");
	long want, n = 1;

	buf[0] = '\0';
	if (!p)
		return;
	want = strtol(p + 5, NULL, 10);
	if (want <= 0)
		return;
	while (script && *script && n < want) {
		script = strchr(script, '\n');
		if (script)
			script++;
		n++;
	}
	if (script && *script)
		snprintf(buf, len, " [line %ld: %.*s]", want, (int)strcspn(script, "\n"), script);
}

int rules_run_restore(int bi, int fi, const char *script, size_t len, char *err, size_t errlen)
{
	char path[PATH_BUF], wait_s[16], where[512];
	char *argv[5];
	struct ld_rules_out out;
	int argc = 0;

	if (ld_rules_find_program(restore_prog[bi][fi], path, sizeof path) < 0) {
		set_err(err, errlen, "%s not found (install iptables)", restore_prog[bi][fi]);
		return -1;
	}
	argv[argc++] = path;
	argv[argc++] = "--noflush";
	if (bi == 1) {
		/* legacy serialises writers with a file lock: wait for it, boundedly */
		snprintf(wait_s, sizeof wait_s, "%d", LD_RULES_XTLOCK_WAIT_S);
		argv[argc++] = "-w";
		argv[argc++] = wait_s;
	}
	argv[argc] = NULL;
	if (ld_rules_exec(path, argv, script, len, &out, err, errlen) < 0)
		return -1;
	if (out.status != 0) {
		failing_line(out.err, script, where, sizeof where);
		set_err(err, errlen, "%s failed (exit %d): %s%s", restore_prog[bi][fi], out.status,
			out.err[0] ? out.err : "no message", where);
		ld_rules_out_free(&out);
		return -1;
	}
	ld_rules_out_free(&out);
	return 0;
}

/* Remove what @r selects from one snapshot. Return chains removed or -1. */
int rules_remove_from(int bi, int fi, const struct snapshot *s, int queue,
		      ld_rules_keep_fn *keep, void *keep_ctx, char *err, size_t errlen)
{
	struct removal *r;
	int rc = 0;

	if (!s->present || !s->text || !s->text[0])
		return 0;
	r = calloc(1, sizeof *r);
	if (!r) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	r->queue = queue;
	r->keep = keep;
	r->keep_ctx = keep_ctx;
	walk_save(s->text, removal_item, r);
	removal_close_table(r);
	if (r->script.oom || r->chains.oom) {
		set_err(err, errlen, "out of memory");
		rc = -1;
	} else if (r->script.len) {
		rc = rules_run_restore(bi, fi, r->script.p, r->script.len, err, errlen);
		if (rc == 0)
			rc = r->nchains;
	}
	sb_free(&r->script);
	sb_free(&r->chains);
	free(r);
	return rc;
}

int ld_rules_cleanup(int queue, int backend, ld_rules_keep_fn *keep, void *ctx,
		     char *err, size_t errlen)
{
	int bi, fi, total = 0, failed = 0;
	char first_err[1024] = "";

	for (bi = 0; bi < NBACKENDS; bi++) {
		if (backend != LD_BACKEND_AUTO && backend_index(backend) != bi)
			continue;
		for (fi = 0; fi < NFAMILIES; fi++) {
			struct snapshot s;
			char e[1024];
			int n;

			if (rules_snapshot_read(bi, fi, &s, e, sizeof e) < 0) {
				n = -1;
			} else {
				n = rules_remove_from(bi, fi, &s, queue, keep, ctx, e, sizeof e);
				free(s.text);
			}
			if (n < 0) {
				/* carry on with the others: remove as much as we can */
				if (!failed)
					snprintf(first_err, sizeof first_err, "%s", e);
				failed = 1;
				continue;
			}
			total += n;
		}
	}
	if (failed) {
		set_err(err, errlen, "%s", first_err);
		return -1;
	}
	return total;
}

int ld_rules_remove(const struct ld_rules_cfg *cfg, char *err, size_t errlen)
{
	return ld_rules_cleanup(cfg->queue, LD_BACKEND_AUTO, NULL, NULL, err, errlen) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ listing */

struct scan_ctx {
	ld_rules_scan_fn *fn;
	void *ctx;
	int backend, family;
};

static void scan_item(void *ctx, const char *table, unsigned q, int item, const char *line,
		      size_t len)
{
	struct scan_ctx *s = ctx;

	(void)len;
	s->fn(s->ctx, s->backend, s->family, table, q, item, line);
}

int ld_rules_scan(int backend, ld_rules_scan_fn *fn, void *ctx, char *err, size_t errlen)
{
	int bi, fi, total = 0;

	for (bi = 0; bi < NBACKENDS; bi++) {
		if (backend != LD_BACKEND_AUTO && backend_index(backend) != bi)
			continue;
		for (fi = 0; fi < NFAMILIES; fi++) {
			struct snapshot s;
			struct scan_ctx sc = { fn, ctx, index_backend(bi), family_of(fi) };

			if (rules_snapshot_read(bi, fi, &s, err, errlen) < 0)
				return -1;
			if (s.text)
				total += walk_save(s.text, scan_item, &sc);
			free(s.text);
		}
	}
	return total;
}

int ld_rules_read_saves(int backend, ld_rules_save_fn *fn, void *ctx, char *err,
			size_t errlen)
{
	for (int bi = 0; bi < NBACKENDS; bi++) {
		if (backend != LD_BACKEND_AUTO && backend_index(backend) != bi)
			continue;
		for (int fi = 0; fi < NFAMILIES; fi++) {
			struct snapshot s;

			if (rules_snapshot_read(bi, fi, &s, err, errlen) < 0)
				return -1;
			if (s.text)
				fn(ctx, index_backend(bi), family_of(fi), s.text);
			free(s.text);
		}
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * rules.c - compile a pcap filter for xt_bpf, install and remove the
 * iptables/ip6tables rules that divert matching packets to a queue.
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
#include "rules.h"
#include "offload.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <pcap/pcap.h>

enum {
	SNAPLEN = 65535,         /* pcap_open_dead: whole packets */
	PATH_BUF = 4096,
	NFAMILIES = 2,           /* index 0 IPv4, 1 IPv6 */
	NBACKENDS = 2,           /* index 0 nft, 1 legacy */
};

/*
 * Loads at or above this offset are Linux's BPF "ancillary data" (SKF_AD_OFF
 * in linux/filter.h, which clashes with pcap/bpf.h): libpcap uses them for
 * inbound/outbound (the packet type), which at a netfilter hook does not
 * mean the direction: locally made packets are not PACKET_OUTGOING there.
 */
static const uint32_t skf_ad_off = 0xfffff000u;

/* The table every luadivert chain lives in: the only one with all five hooks. */
static const char rules_table[] = "mangle";

static const char *const hook_names[] = {
	"prerouting", "input", "forward", "output", "postrouting",
};
static const char *const hook_chains[] = {
	"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING",
};

/* [backend index][family index] */
static const char *const save_prog[NBACKENDS][NFAMILIES] = {
	{ "iptables-nft-save", "ip6tables-nft-save" },
	{ "iptables-legacy-save", "ip6tables-legacy-save" },
};
static const char *const restore_prog[NBACKENDS][NFAMILIES] = {
	{ "iptables-nft-restore", "ip6tables-nft-restore" },
	{ "iptables-legacy-restore", "ip6tables-legacy-restore" },
};
/* legacy x_tables in this namespace: absent or empty = no legacy rules here */
static const char *const legacy_names[NFAMILIES] = {
	"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names",
};

static int backend_index(int backend) { return backend == LD_BACKEND_LEGACY; }
static int index_backend(int i) { return i ? LD_BACKEND_LEGACY : LD_BACKEND_NFT; }
static int family_of(int fi) { return fi ? 6 : 4; }

/* ------------------------------------------------------------ small helpers */

/* A growing string; on allocation failure it remembers and stays valid. */
struct sbuf {
	char  *p;
	size_t len, cap;
	int    oom;
};

static void __attribute__((format(printf, 2, 3))) sb_add(struct sbuf *b, const char *fmt, ...)
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

static void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static void __attribute__((format(printf, 3, 4))) set_err(char *err, size_t errlen,
							    const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* -------------------------------------------------------------- configuration */

void ld_rules_cfg_init(struct ld_rules_cfg *cfg, uint16_t queue)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->queue = queue;
	cfg->hooks = LD_HOOK_DEFAULT;
	cfg->backend = LD_BACKEND_AUTO;
	cfg->skip_mark = LD_RULES_SKIP_MARK_DEFAULT;
}

int ld_rules_parse_hook(const char *name, unsigned *hooks)
{
	unsigned add = 0;
	const char *p = name;

	if (!name)
		return -1;
	for (;;) {
		const char *end;
		size_t n, i;
		int found = 0;

		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strcspn(p, ",");
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0)
			return -1;
		if (n == 3 && strncasecmp(p, "all", 3) == 0) {
			add |= LD_HOOK_ALL;
			found = 1;
		}
		for (i = 0; !found && i < sizeof hook_names / sizeof hook_names[0]; i++) {
			if (strlen(hook_names[i]) == n && strncasecmp(p, hook_names[i], n) == 0) {
				add |= 1u << i;
				found = 1;
			}
		}
		if (!found)
			return -1;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	*hooks |= add;
	return 0;
}

const char *ld_rules_hook_names(unsigned hooks, char *buf, size_t len)
{
	size_t i, used = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < sizeof hook_names / sizeof hook_names[0]; i++) {
		int n;

		if (!(hooks & (1u << i)))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", hook_names[i]);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}

int ld_rules_parse_backend(const char *name, int *backend)
{
	if (!name)
		return -1;
	if (strcmp(name, "auto") == 0)
		*backend = LD_BACKEND_AUTO;
	else if (strcmp(name, "nft") == 0)
		*backend = LD_BACKEND_NFT;
	else if (strcmp(name, "legacy") == 0)
		*backend = LD_BACKEND_LEGACY;
	else
		return -1;
	return 0;
}

const char *ld_rules_backend_name(int backend)
{
	switch (backend) {
	case LD_BACKEND_AUTO:   return "auto";
	case LD_BACKEND_NFT:    return "nft";
	case LD_BACKEND_LEGACY: return "legacy";
	default:                return "?";
	}
}

void ld_rules_chain_name(uint16_t queue, char *buf, size_t len)
{
	snprintf(buf, len, LD_RULES_CHAIN_PREFIX "%u", (unsigned)queue);
}

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

/* ----------------------------------------------------------------- compile */

static int filter_empty(const char *f)
{
	if (!f)
		return 1;
	while (*f && isspace((unsigned char)*f))
		f++;
	return *f == '\0';
}

/* A program that is one "ret #0" matches nothing (older libpcap returns
 * that instead of the "expression rejects all packets" error). */
static int prog_rejects_all(const struct bpf_program *bp)
{
	return bp->bf_len == 1 && BPF_CLASS(bp->bf_insns[0].code) == BPF_RET &&
	       BPF_RVAL(bp->bf_insns[0].code) == BPF_K && bp->bf_insns[0].k == 0;
}

/* Does the program read socket-level metadata instead of packet bytes? */
static int prog_uses_ancillary(const struct bpf_program *bp)
{
	unsigned i;

	for (i = 0; i < bp->bf_len; i++) {
		const struct bpf_insn *in = &bp->bf_insns[i];
		unsigned cls = BPF_CLASS(in->code), mode = BPF_MODE(in->code);

		if ((cls == BPF_LD || cls == BPF_LDX) && (mode == BPF_ABS || mode == BPF_IND) &&
		    in->k >= skf_ad_off)
			return 1;
	}
	return 0;
}

/*
 * Compile @expr for raw IP packets. Return 1 with @bp filled (free it with
 * pcap_freecode), 0 if the expression can match no packet, -1 on error
 * with libpcap's message in @msg.
 */
static int compile_raw(pcap_t *p, const char *expr, struct bpf_program *bp,
		       char *msg, size_t msglen)
{
	if (pcap_compile(p, bp, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		const char *e = pcap_geterr(p);

		if (strstr(e, "rejects all packets"))
			return 0;
		snprintf(msg, msglen, "%s", e);
		return -1;
	}
	if (prog_rejects_all(bp)) {
		pcap_freecode(bp);
		return 0;
	}
	return 1;
}

/* The xt_bpf --bytecode text: "N,code jt jf k,code jt jf k,..." */
static void format_bytecode(const struct bpf_program *bp, char *out, size_t len)
{
	size_t used;
	unsigned i;
	int n;

	n = snprintf(out, len, "%u", bp->bf_len);
	used = n > 0 ? (size_t)n : 0;
	for (i = 0; i < bp->bf_len && used < len; i++) {
		const struct bpf_insn *in = &bp->bf_insns[i];

		n = snprintf(out + used, len - used, ",%u %u %u %u", (unsigned)in->code,
			     (unsigned)in->jt, (unsigned)in->jf, (unsigned)in->k);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int check_cfg(const struct ld_rules_cfg *cfg, char *err, size_t errlen)
{
	if (cfg->hooks & ~(unsigned)LD_HOOK_ALL) {
		set_err(err, errlen, "invalid hook mask 0x%x", cfg->hooks);
		return -1;
	}
	if (cfg->family != 0 && cfg->family != 4 && cfg->family != 6) {
		set_err(err, errlen, "invalid family %d: use 4, 6, or 0 for both", cfg->family);
		return -1;
	}
	if (cfg->backend != LD_BACKEND_AUTO && cfg->backend != LD_BACKEND_NFT &&
	    cfg->backend != LD_BACKEND_LEGACY) {
		set_err(err, errlen, "invalid backend %d", cfg->backend);
		return -1;
	}
	if (cfg->offload_gen > LD_OFFLOAD_GEN_MAX) {
		set_err(err, errlen, "invalid offload generation %u", (unsigned)cfg->offload_gen);
		return -1;
	}
	return 0;
}

int ld_rules_compile(const struct ld_rules_cfg *cfg, struct ld_rules_prog *prog,
		     char *err, size_t errlen)
{
	static const char *const fam_prefix[NFAMILIES] = { "ip", "ip6" };
	static const char *const fam_name[NFAMILIES] = { "IPv4", "IPv6" };
	struct ld_rules_prog local;
	struct bpf_program bp;
	char msg[PCAP_ERRBUF_SIZE + 64];
	unsigned want;
	pcap_t *p;
	int fi, rc;

	if (!prog)
		prog = &local;
	memset(prog, 0, sizeof *prog);
	if (check_cfg(cfg, err, errlen) < 0)
		return -1;
	want = cfg->family == 4 ? LD_RULES_V4 : cfg->family == 6 ? LD_RULES_V6
								 : LD_RULES_V4 | LD_RULES_V6;
	if (filter_empty(cfg->filter)) {
		prog->families = want;
		return 0;
	}

	p = pcap_open_dead(DLT_RAW, SNAPLEN);
	if (!p) {
		set_err(err, errlen, "libpcap: pcap_open_dead failed (out of memory?)");
		return -1;
	}
	/* as given first, so a mistake is reported in the user's own terms */
	rc = compile_raw(p, cfg->filter, &bp, msg, sizeof msg);
	if (rc < 0) {
		set_err(err, errlen, "invalid filter \"%s\": %s", cfg->filter, msg);
		goto fail;
	}
	if (rc == 0) {
		set_err(err, errlen, "filter \"%s\" matches no packet (libpcap: expression "
			"rejects all packets)", cfg->filter);
		goto fail;
	}
	if (prog_uses_ancillary(&bp)) {
		set_err(err, errlen, "invalid filter \"%s\": inbound/outbound and other tests of "
			"socket metadata mean nothing at a netfilter hook: choose the direction "
			"with --hook", cfg->filter);
		pcap_freecode(&bp);
		goto fail;
	}
	pcap_freecode(&bp);

	for (fi = 0; fi < NFAMILIES; fi++) {
		size_t elen = strlen(cfg->filter) + 16;
		char *expr;

		if (!(want & (1u << fi)))
			continue;
		expr = malloc(elen);
		if (!expr) {
			set_err(err, errlen, "out of memory");
			goto fail;
		}
		snprintf(expr, elen, "%s and (%s)", fam_prefix[fi], cfg->filter);
		rc = compile_raw(p, expr, &bp, msg, sizeof msg);
		free(expr);
		if (rc < 0) {
			set_err(err, errlen, "invalid filter \"%s\" for %s: %s", cfg->filter,
				fam_name[fi], msg);
			goto fail;
		}
		if (rc == 0)
			continue;   /* this family cannot match: no rule for it */
		if (bp.bf_len > LD_RULES_BPF_MAX) {
			set_err(err, errlen, "filter \"%s\" compiles to %u BPF instructions for %s; "
				"the kernel's xt_bpf match takes at most %d: simplify it",
				cfg->filter, bp.bf_len, fam_name[fi], LD_RULES_BPF_MAX);
			pcap_freecode(&bp);
			goto fail;
		}
		prog->ninsn[fi] = bp.bf_len;
		format_bytecode(&bp, prog->bytecode[fi], sizeof prog->bytecode[fi]);
		prog->families |= 1u << fi;
		pcap_freecode(&bp);
	}
	pcap_close(p);
	if (!prog->families) {
		set_err(err, errlen, "filter \"%s\" matches no %s packet (--family %d)",
			cfg->filter, cfg->family == 4 ? "IPv4" : "IPv6", cfg->family);
		return -1;
	}
	return 0;
fail:
	pcap_close(p);
	memset(prog, 0, sizeof *prog);
	return -1;
}

/* ------------------------------------------------------ reading what is there */

/* One backend+family's iptables-save text, or why there is none. */
struct snapshot {
	int   present;   /* the backend's programs exist */
	char *text;      /* save output ("" for legacy without tables); NULL if absent */
};

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
static int ipv6_enabled(void)
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

static int backend_present(int bi)
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
static int snapshot_read(int bi, int fi, struct snapshot *s, char *err, size_t errlen)
{
	char path[PATH_BUF];
	char *argv[2];
	struct ld_rules_out out;

	s->present = 0;
	s->text = NULL;
	if (fi == 1 && !ipv6_enabled())
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
static int has_rules(const char *text)
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

static int run_restore(int bi, int fi, const char *script, size_t len, char *err, size_t errlen)
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
static int remove_from(int bi, int fi, const struct snapshot *s, int queue,
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
		rc = run_restore(bi, fi, r->script.p, r->script.len, err, errlen);
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

			if (snapshot_read(bi, fi, &s, e, sizeof e) < 0) {
				n = -1;
			} else {
				n = remove_from(bi, fi, &s, queue, keep, ctx, e, sizeof e);
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

			if (snapshot_read(bi, fi, &s, err, errlen) < 0)
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

			if (snapshot_read(bi, fi, &s, err, errlen) < 0)
				return -1;
			if (s.text)
				fn(ctx, index_backend(bi), family_of(fi), s.text);
			free(s.text);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ install */

static int resolve(int backend, struct snapshot snap[NBACKENDS][NFAMILIES], char *err,
		   size_t errlen)
{
	int have[NBACKENDS], rules[NBACKENDS] = { 0, 0 };
	int bi, fi;

	for (bi = 0; bi < NBACKENDS; bi++) {
		/* ld_rules_backend_resolve() reads no snapshot for an explicit backend */
		have[bi] = backend_present(bi) &&
			   (backend != LD_BACKEND_AUTO || snap[bi][0].present);
		for (fi = 0; fi < NFAMILIES; fi++)
			if (snap[bi][fi].text && has_rules(snap[bi][fi].text))
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
			if (snapshot_read(bi, fi, &snap[bi][fi], err, errlen) < 0) {
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
	if (filter_empty(filter)) {
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
	return run_restore(backend_index(backend), family == 6, script, len, err, errlen);
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
	if (!ipv6_enabled()) {
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
			if (remove_from(bi, fi, &snap[bi][fi], cfg->queue, NULL, NULL, err, errlen) < 0)
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
			r = run_restore(bi, fi, script.p, script.len, err, errlen);
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

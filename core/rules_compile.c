// SPDX-License-Identifier: MIT
/*
 * rules_compile.c - the options of luadivert's rules (hooks, back-ends,
 * chain names) and the pcap filter, compiled with libpcap into the
 * classic BPF that xt_bpf runs (rules_priv.h).
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

#include <pcap/pcap.h>

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

/* ----------------------------------------------------------------- compile */

int rules_filter_empty(const char *f)
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
	if (rules_filter_empty(cfg->filter)) {
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

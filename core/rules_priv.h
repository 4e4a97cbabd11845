/* SPDX-License-Identifier: MIT */
/*
 * rules_priv.h - what the parts of core/rules*.c share (rules.h is the
 * interface):
 *
 *   rules_compile.c  options (hooks, back-ends, chain names) and the pcap
 *                    filter compiled for xt_bpf
 *   rules_save.c     what iptables-save shows: snapshots, luadivert's chains
 *                    in them, removal scripts, listing
 *   rules.c          installing: the restore script of a set of rules, the
 *                    back-end to use, iptables-restore
 *
 * Not an interface for anything else.
 */
#ifndef LD_RULES_PRIV_H
#define LD_RULES_PRIV_H

#include "rules.h"

#include <stddef.h>
#include <stdint.h>

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

static inline int backend_index(int backend) { return backend == LD_BACKEND_LEGACY; }
static inline int index_backend(int i) { return i ? LD_BACKEND_LEGACY : LD_BACKEND_NFT; }
static inline int family_of(int fi) { return fi ? 6 : 4; }

/* A growing string; on allocation failure it remembers and stays valid. */
struct sbuf {
	char  *p;
	size_t len, cap;
	int    oom;
};

/* One backend+family's iptables-save text, or why there is none. */
struct snapshot {
	int   present;   /* the backend's programs exist */
	char *text;      /* save output ("" for legacy without tables); NULL if absent */
};

/* rules.c: small helpers */
void __attribute__((format(printf, 2, 3))) sb_add(struct sbuf *b, const char *fmt, ...);
void sb_free(struct sbuf *b);
void __attribute__((format(printf, 3, 4))) set_err(char *err, size_t errlen, const char *fmt,
						    ...);

/* rules_compile.c */
/** rules_filter_empty() - @f is NULL, empty or blanks: match everything */
int rules_filter_empty(const char *f);

/* rules_save.c */
/** rules_ipv6_enabled() - this kernel has IPv6 (else ip6tables is not asked) */
int rules_ipv6_enabled(void);
/** rules_backend_present() - back-end @bi's save/restore programs exist */
int rules_backend_present(int bi);
/**
 * rules_snapshot_read() - iptables-save of back-end @bi, family @fi, into @s
 * Return: 0, or -1 with @err set.
 */
int rules_snapshot_read(int bi, int fi, struct snapshot *s, char *err, size_t errlen);
/** rules_has_rules() - a save text has any rule at all (back-end in use) */
int rules_has_rules(const char *text);
/**
 * rules_run_restore() - iptables-restore --noflush of @script, back-end @bi, family @fi
 * Return: 0, or -1 with @err naming the failing line.
 */
int rules_run_restore(int bi, int fi, const char *script, size_t len, char *err, size_t errlen);
/**
 * rules_remove_from() - remove luadivert's chains for @queue (-1: all that
 * @keep does not keep) from snapshot @s of back-end @bi, family @fi
 * Return: 0, or -1 with @err set.
 */
int rules_remove_from(int bi, int fi, const struct snapshot *s, int queue,
		      ld_rules_keep_fn *keep, void *keep_ctx, char *err, size_t errlen);

#endif /* LD_RULES_PRIV_H */

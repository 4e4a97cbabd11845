/* SPDX-License-Identifier: MIT */
/*
 * rules.h - divert rules: a tcpdump-style filter compiled to classic BPF with
 * libpcap and installed as iptables/ip6tables rules that send the matching
 * packets to an NFQUEUE queue, in luadivert's own chains, always removable.
 *
 * What gets installed for queue N (both families unless restricted), always
 * in the mangle table (see docs/rules.md for why):
 *
 *   -N LUADIVERT-QN
 *   -A LUADIVERT-QN -m mark --mark SKIP/SKIP -j RETURN          (skip_mark != 0)
 *   three offload rules, see offload.h                           (offload_gen != 0)
 *   -A LUADIVERT-QN [-m bpf --bytecode "..."] -m comment --comment "filter: EXPR"
 *                   -j NFQUEUE --queue-num N [--queue-bypass]
 *                   (queues > 1: --queue-balance N:N+queues-1 [--queue-cpu-fanout])
 *   -A PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING -j LUADIVERT-QN   (one per hook)
 *
 * Each family's rules go in with ONE iptables-restore --noflush run (atomic
 * per family); removal is one more. Programs are started with posix_spawn
 * and an argument vector, never through a shell.
 *
 * How `luadivert run` uses this module, in order:
 *
 *   ld_rules_compile()   validate --filter: exit 2 on error, nothing touched
 *   (load the policy)    exit 1 on error
 *   ld_rules_lock()      exit 1 if another luadivert holds the queue;
 *                        do NOT call ld_rules_remove() on that path
 *   (bind the queue)
 *   ld_rules_install()   exit 1 on error (it has rolled itself back)
 *   (run)
 *   ld_rules_remove()    on every exit path after a successful lock,
 *                        before unbinding the queue
 *   ld_rules_unlock()
 *
 * They fork, wait and allocate: the supervisor calls them from its event
 * loop (signals arrive there through a signalfd, never as handlers). They
 * need SIGCHLD not to be ignored (SIG_IGN would reap the children before we
 * read their status).
 */
#ifndef LD_RULES_H
#define LD_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Hooks, as bits: bit i is the kernel's hook number i (struct ld_packet.hook). */
enum ld_hook_bit {
	LD_HOOK_PREROUTING  = 1u << 0,  /* NF_INET_PRE_ROUTING */
	LD_HOOK_INPUT       = 1u << 1,  /* NF_INET_LOCAL_IN */
	LD_HOOK_FORWARD     = 1u << 2,  /* NF_INET_FORWARD */
	LD_HOOK_OUTPUT      = 1u << 3,  /* NF_INET_LOCAL_OUT */
	LD_HOOK_POSTROUTING = 1u << 4,  /* NF_INET_POST_ROUTING */
	LD_HOOK_ALL         = 0x1fu,
	/* this host's own traffic, both directions (WinDivert's default layer) */
	LD_HOOK_DEFAULT     = LD_HOOK_INPUT | LD_HOOK_OUTPUT,
};

enum ld_rules_backend {
	LD_BACKEND_AUTO   = 0,  /* legacy if only legacy x_tables hold rules here, else nft */
	LD_BACKEND_NFT    = 1,  /* iptables-nft / ip6tables-nft (nf_tables through xt compat) */
	LD_BACKEND_LEGACY = 2,  /* iptables-legacy / ip6tables-legacy (x_tables) */
};

/* Address families, as bits (struct ld_rules_prog.families). */
enum ld_rules_family_bit {
	LD_RULES_V4 = 1,
	LD_RULES_V6 = 2,
};

enum {
	LD_RULES_BPF_MAX      = 64,     /* xt_bpf: XT_BPF_MAX_NUM_INSTR instructions */
	LD_RULES_BYTECODE_MAX = 2048,   /* "64,c t f k,..." fits: 64 * 25 + 4 bytes */
	/*
	 * Packets luadivert injects (duplicates, new packets) carry these mark
	 * bits; the rules RETURN early for a packet that has all of them, so
	 * nothing luadivert sends is diverted again. "LD" in the high half,
	 * clear of the low bits people use for policy routing.
	 */
	LD_RULES_SKIP_MARK_DEFAULT = 0x4c440000,
	LD_RULES_CHAIN_MAX    = 32,     /* "LUADIVERT-Q65535" and NUL, with room */
	LD_RULES_TIMEOUT_MS   = 30000,  /* longest we wait for one iptables run */
	LD_RULES_XTLOCK_WAIT_S = 10,    /* -w for iptables-legacy-restore */
	LD_RULES_COMMENT_MAX  = 256,    /* xt_comment: XT_MAX_COMMENT_LEN, NUL included */
};

/* The NFQUEUE rule carries the filter's text as -m comment "filter: EXPR". */
#define LD_RULES_COMMENT_PREFIX "filter: "

/* Every chain luadivert makes is named LD_RULES_CHAIN_PREFIX<queue>. */
#define LD_RULES_CHAIN_PREFIX "LUADIVERT-Q"
/* Default lock directory; fallbacks in ld_rules_lock(). */
#define LD_RULES_RUN_DIR "/run/luadivert"

struct ld_rules_cfg {
	uint16_t    queue;        /* NFQUEUE number */
	uint16_t    queues;       /* issue 16: 0 or 1: --queue-num queue; N > 1: --queue-balance
	                           * queue:queue+N-1 (the kernel hashes by flow: one queue per worker) */
	int         cpu_fanout;   /* with queues > 1: --queue-cpu-fanout (the CPU picks the queue,
	                           * not the flow hash) */
	const char *filter;       /* pcap filter expression; NULL or "" = every packet */
	unsigned    hooks;        /* enum ld_hook_bit mask; 0 = LD_HOOK_DEFAULT */
	int         family;       /* 0 = IPv4 and IPv6, 4 = IPv4 only, 6 = IPv6 only */
	int         fail_closed;  /* 1: no --queue-bypass, packets drop while nobody listens */
	int         backend;      /* enum ld_rules_backend */
	uint32_t    skip_mark;    /* packets with all these mark bits are not diverted; 0 = none */
	uint32_t    offload_gen;  /* divert.OFFLOAD: the generation the offload rules match
	                           * (1..LD_OFFLOAD_GEN_MAX, core/offload.h); 0 = no such rules.
	                           * With offload rules, EVERY family gets the chain: one the
	                           * filter cannot match holds only them (no NFQUEUE rule, no
	                           * jump), see ld_rules_render() */
	int         unhooked;     /* only with offload_gen: the chain holds the skip and offload
	                           * rules, no NFQUEUE rule and no jumps (every family) */
	const char *comment;      /* NULL, or a tag put before the filter text in the NFQUEUE rule's
	                           * -m comment (shown by
	                           * `rules list`; quotes and backslashes become ', at most
	                           * LD_RULES_COMMENT_MAX bytes) */
};

/* The compiled filter, per family ([0] IPv4, [1] IPv6). */
struct ld_rules_prog {
	unsigned families;                           /* LD_RULES_V4|V6: families that get rules */
	unsigned ninsn[2];                           /* BPF instructions; 0 = no filter */
	char     bytecode[2][LD_RULES_BYTECODE_MAX]; /* xt_bpf --bytecode text, "" = none */
};

/**
 * ld_rules_cfg_init() - fill @cfg with the defaults
 * @cfg: configuration to fill
 * @queue: queue number
 *
 * No filter, LD_HOOK_DEFAULT, both families, queue bypass, auto backend,
 * LD_RULES_SKIP_MARK_DEFAULT.
 */
void ld_rules_cfg_init(struct ld_rules_cfg *cfg, uint16_t queue);

/**
 * ld_rules_parse_hook() - add the hooks named in @name to @hooks
 * @name: "prerouting", "input", "forward", "output", "postrouting" or "all",
 *        any case, several separated by commas ("input,output")
 * @hooks: mask to OR the hooks into (so repeated --hook options add up)
 *
 * Return: 0, or -1 if a name is unknown or empty (@hooks is then unchanged).
 */
int ld_rules_parse_hook(const char *name, unsigned *hooks);

/**
 * ld_rules_hook_names() - the hooks in @hooks as "input,output"
 * @hooks: enum ld_hook_bit mask
 * @buf: receives the names
 * @len: size of @buf (64 is always enough)
 *
 * Return: @buf.
 */
const char *ld_rules_hook_names(unsigned hooks, char *buf, size_t len);

/**
 * ld_rules_parse_backend() - "auto", "nft" or "legacy" to enum ld_rules_backend
 * @name: the name
 * @backend: receives the value
 *
 * Return: 0, or -1 if @name is none of those.
 */
int ld_rules_parse_backend(const char *name, int *backend);

/**
 * ld_rules_backend_name() - "auto", "nft" or "legacy"
 * @backend: enum ld_rules_backend
 *
 * Return: a static string ("?" for an unknown value).
 */
const char *ld_rules_backend_name(int backend);

/**
 * ld_rules_chain_name() - the chain luadivert uses for a queue
 * @queue: queue number
 * @buf: receives "LUADIVERT-Q<queue>"
 * @len: size of @buf (LD_RULES_CHAIN_MAX is enough)
 */
void ld_rules_chain_name(uint16_t queue, char *buf, size_t len);

/**
 * ld_rules_compile() - compile and check the filter, without side effects
 * @cfg: filter, family, hooks, backend to check
 * @prog: receives the programs (may be NULL to only validate)
 * @err: receives a message for the user on failure
 * @errlen: size of @err
 *
 * The expression is compiled by libpcap for raw IP packets (DLT_RAW: the
 * program starts at the IP header, exactly what xt_bpf sees, since the
 * kernel runs it over the skb from the network header). It is compiled once
 * as given, so a bad expression fails with libpcap's own message, then per
 * family as "ip and (EXPR)" and "ip6 and (EXPR)": libpcap's optimizer drops
 * the other family's branch, which keeps each program short (xt_bpf takes
 * at most LD_RULES_BPF_MAX instructions), and a family the expression can
 * never match ("expression rejects all packets") gets no rule at all.
 * Needs no privilege and touches nothing: call it before anything else so
 * a bad --filter exits with status 2 and nothing installed.
 *
 * Return: 0, or -1 with @err set (invalid expression, no packet of the
 * requested --family can match, program longer than xt_bpf allows, invalid
 * hooks/family/backend).
 */
int ld_rules_compile(const struct ld_rules_cfg *cfg, struct ld_rules_prog *prog,
		     char *err, size_t errlen);

/**
 * ld_rules_render() - the iptables-restore input that installs one family
 * @cfg: what to install
 * @prog: @cfg's programs, from ld_rules_compile()
 * @family: 4 or 6
 * @buf: receives the text ("" when @family gets no rules)
 * @len: size of @buf (4096 is always enough)
 *
 * This is exactly what ld_rules_install() feeds to
 * "iptables-restore --noflush" (`luadivert rules print` shows it).
 *
 * With offload rules (cfg->offload_gen), a family the filter cannot match
 * (or every family, with cfg->unhooked) still gets the chain with the skip
 * and offload rules, but no NFQUEUE rule and no jumps. Why: their connmark
 * match keeps conntrack registered in the namespace, and when its last
 * user goes, the kernel unregisters conntrack's hooks, and unregistering
 * any hook drops EVERY packet queued in the namespace (nf_queue_nf_hook_drop).
 * So a reload that changes --family, and the exit, must not remove the
 * last connmark rule while packets are queued.
 * Return: 0, or -1 if @buf is too small or @family invalid.
 */
int ld_rules_render(const struct ld_rules_cfg *cfg, const struct ld_rules_prog *prog,
		    int family, char *buf, size_t len);

/**
 * ld_rules_filter_comment() - the filter's text as the NFQUEUE rule's comment
 * @tag: NULL, or a plain word or two put first ("TAG; filter: EXPR"), e.g.
 *       the mark of rules that `luadivert rules add` installed
 * @filter: the expression (NULL or blank: none)
 * @out: receives LD_RULES_COMMENT_PREFIX and the text ("(none)" for no
 *       filter); quotes and backslashes become ', control bytes spaces, and a
 *       text too long for xt_comment ends in "..."
 * @len: size of @out (LD_RULES_COMMENT_MAX)
 */
void ld_rules_filter_comment(const char *tag, const char *filter, char *out, size_t len);

/**
 * ld_rules_restore() - run one "iptables-restore --noflush" with @script
 * @backend: LD_BACKEND_NFT or LD_BACKEND_LEGACY
 * @family: 4 or 6
 * @script: the restore input
 * @len: its length
 * @err: receives the tool's message (and the failing line) on failure
 * @errlen: size of @err
 *
 * One run is one transaction: all of @script applies, or none of it.
 * Return: 0, or -1 with @err set.
 */
int ld_rules_restore(int backend, int family, const char *script, size_t len, char *err,
		     size_t errlen);

/**
 * ld_rules_install() - install the rules of @cfg in this network namespace
 * @cfg: what to install
 * @err: receives a message (with the failing command's stderr) on failure
 * @errlen: size of @err
 *
 * The caller holds the queue's lock (ld_rules_lock()), so any luadivert
 * chain of this queue already present, in either backend, is a leftover of
 * a dead instance: it is removed first. Then each family's rules go in with
 * one iptables-restore --noflush run. On failure everything this call
 * installed is removed again before it returns.
 *
 * Return: 0, or -1 with @err set.
 */
int ld_rules_install(const struct ld_rules_cfg *cfg, char *err, size_t errlen);

/**
 * ld_rules_remove() - remove every luadivert rule and chain of cfg->queue
 * @cfg: only cfg->queue is used
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Looks at both families and both backends (whatever cfg->backend says),
 * so it also cleans up after an install that failed half way. Idempotent:
 * nothing installed is success. Call it with the queue's lock held.
 *
 * Return: 0, or -1 with @err set (what could be removed was removed).
 */
int ld_rules_remove(const struct ld_rules_cfg *cfg, char *err, size_t errlen);

/**
 * ld_rules_backend_resolve() - the backend ld_rules_install() would use
 * @backend: enum ld_rules_backend (LD_BACKEND_AUTO is resolved)
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Auto: legacy when iptables-legacy/ip6tables-legacy hold rules in this
 * namespace and the nf_tables variant holds none, else nft; a backend whose
 * programs are not installed is never chosen. Runs iptables-*-save.
 *
 * Return: LD_BACKEND_NFT or LD_BACKEND_LEGACY, or -1 with @err set (the
 * chosen backend's programs are missing).
 */
int ld_rules_backend_resolve(int backend, char *err, size_t errlen);

/* What ld_rules_scan() reports for each luadivert line it finds. */
enum ld_rules_item {
	LD_RULES_ITEM_CHAIN = 1,  /* a LUADIVERT-Q<n> chain exists (line is ":CHAIN - [x:y]") */
	LD_RULES_ITEM_JUMP  = 2,  /* "-A BUILTIN ... -j LUADIVERT-Q<n>" */
	LD_RULES_ITEM_RULE  = 3,  /* "-A LUADIVERT-Q<n> ..." */
};

/**
 * typedef ld_rules_scan_fn - called by ld_rules_scan() for each item found
 * @ctx: the caller's pointer
 * @backend: LD_BACKEND_NFT or LD_BACKEND_LEGACY
 * @family: 4 or 6
 * @table: table name ("mangle")
 * @queue: queue number of the chain involved
 * @item: enum ld_rules_item
 * @line: the iptables-save line, without its newline
 */
typedef void ld_rules_scan_fn(void *ctx, int backend, int family, const char *table,
			      unsigned queue, int item, const char *line);

/**
 * ld_rules_scan() - report every luadivert chain, jump and rule installed
 * @backend: LD_BACKEND_NFT, LD_BACKEND_LEGACY, or LD_BACKEND_AUTO for both
 * @fn: called for each item, in iptables-save order
 * @ctx: passed to @fn
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Reads iptables-save of every table, both families. A backend whose
 * programs are absent is skipped; legacy is read only when this namespace
 * has legacy tables (/proc/net/ip{,6}_tables_names), so scanning never
 * creates any.
 *
 * Return: the number of items reported, or -1 with @err set.
 */
int ld_rules_scan(int backend, ld_rules_scan_fn *fn, void *ctx, char *err, size_t errlen);

/* Called by ld_rules_read_saves() with one backend's and family's save text. */
typedef void ld_rules_save_fn(void *ctx, int backend, int family, const char *text);

/**
 * ld_rules_read_saves() - the iptables-save text of every backend and family
 * @backend: LD_BACKEND_NFT, LD_BACKEND_LEGACY, or LD_BACKEND_AUTO for both
 * @fn: called once per backend and family present
 * @ctx: passed to @fn
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Same rules as ld_rules_scan(): absent backends are skipped, legacy tables
 * are never created by reading them.
 * Return: 0, or -1 with @err set.
 */
int ld_rules_read_saves(int backend, ld_rules_save_fn *fn, void *ctx, char *err,
			size_t errlen);

/* ld_rules_cleanup() decides per queue through this; nonzero = leave it alone. */
typedef int ld_rules_keep_fn(void *ctx, unsigned queue);

/**
 * ld_rules_cleanup() - remove the luadivert chains of one queue or of all
 * @queue: queue number, or -1 for every LUADIVERT-Q<n> chain
 * @backend: LD_BACKEND_NFT, LD_BACKEND_LEGACY, or LD_BACKEND_AUTO for both
 * @keep: if not NULL, called per queue found; nonzero keeps that queue's rules
 * @ctx: passed to @keep
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * One iptables-restore --noflush per backend and family that has
 * something to remove: the jumps first, then the chains (flush, delete).
 *
 * Return: number of chains removed, or -1 with @err set.
 */
int ld_rules_cleanup(int queue, int backend, ld_rules_keep_fn *keep, void *ctx,
		     char *err, size_t errlen);

/**
 * ld_run_dir() - the directory of luadivert's run files (locks, pid files,
 * status files): $LUADIVERT_RUN_DIR if set, else /run/luadivert, else
 * $XDG_RUNTIME_DIR/luadivert, else /tmp/luadivert-<uid>, the first that is
 * (or, with @create, can be made) a writable directory
 * @buf: receives the path
 * @len: size of @buf
 * @create: 1: make it (0700) when missing; 0: only say which it would be
 *
 * Return: 0, or -1 with errno set (EACCES: none is usable).
 */
int ld_run_dir(char *buf, size_t len, int create);

/**
 * ld_rules_lock() - take the queue's lock, so one luadivert per queue
 * @queue: queue number
 * @err: receives e.g. "queue 0 is in use by luadivert pid 1234 (lock ...)"
 * @errlen: size of @err
 *
 * Queue numbers are per network namespace, so the lock is too: the file is
 * <dir>/net<inode>-queue-<queue>.lock, where inode identifies this network
 * namespace (/proc/self/ns/net). <dir> is $LUADIVERT_RUN_DIR if set, else
 * /run/luadivert, else $XDG_RUNTIME_DIR/luadivert, else /tmp/luadivert-<uid>,
 * the first that is (or can be made) a writable directory. The lock is an
 * open-file-description lock (F_OFD_SETLK): it dies with the process, also
 * on kill -9, and the fd is close-on-exec. The file holds the holder's pid.
 *
 * Return: the lock's fd (keep it open while running), or -1 with @err set.
 */
int ld_rules_lock(uint16_t queue, char *err, size_t errlen);

/**
 * ld_rules_unlock() - release the lock taken by ld_rules_lock()
 * @fd: its fd (a negative fd is ignored)
 * @queue: the queue it locks
 *
 * Deletes the lock file while still holding the lock, then closes @fd.
 */
void ld_rules_unlock(int fd, uint16_t queue);

/**
 * ld_rules_lock_holder() - who holds the queue's lock, without taking it
 * @queue: queue number
 *
 * Return: the holder's pid, 0 if nobody holds it, -1 if it is held but the
 * pid is unreadable.
 */
pid_t ld_rules_lock_holder(uint16_t queue);

/**
 * ld_rules_lock_path() - the lock file of a queue in this network namespace
 * @queue: queue number
 * @buf: receives the path
 * @len: size of @buf
 * @create_dir: 1 to create the directory if needed
 *
 * Return: 0, or -1 with errno set when no directory is usable.
 */
int ld_rules_lock_path(uint16_t queue, char *buf, size_t len, int create_dir);

/* Output of ld_rules_exec(). */
struct ld_rules_out {
	char  *out;     /* stdout, NUL terminated (malloc'd, free with ld_rules_out_free) */
	size_t out_len;
	char  *err;     /* stderr, NUL terminated, trailing newlines removed */
	int    status;  /* exit status, or 128 + signal number */
};

/**
 * ld_rules_exec() - run a program and collect what it prints
 * @path: absolute path of the program
 * @argv: its arguments, argv[0] first, NULL terminated (no shell involved)
 * @in: bytes for its stdin (NULL: /dev/null-like empty input)
 * @in_len: their length
 * @res: receives stdout, stderr and the exit status
 * @err: receives a message when the program could not be run
 * @errlen: size of @err
 *
 * stdin, stdout and stderr are memfds, so nothing blocks whatever the sizes.
 * The child gets an empty signal mask and default signal dispositions; it
 * is killed after LD_RULES_TIMEOUT_MS.
 *
 * Return: 0 when the program ran (its status is in @res), -1 with @err set
 * otherwise. On 0, free @res with ld_rules_out_free().
 */
int ld_rules_exec(const char *path, char *const argv[], const char *in, size_t in_len,
		  struct ld_rules_out *res, char *err, size_t errlen);

/**
 * ld_rules_out_free() - free what ld_rules_exec() collected
 * @res: the result (fields reset)
 */
void ld_rules_out_free(struct ld_rules_out *res);

/**
 * ld_rules_find_program() - look a program up in $PATH, then the sbin dirs
 * @name: e.g. "iptables-nft-restore"
 * @buf: receives its absolute path
 * @len: size of @buf
 *
 * Return: 0, or -1 if there is no executable of that name.
 */
int ld_rules_find_program(const char *name, char *buf, size_t len);

#endif /* LD_RULES_H */

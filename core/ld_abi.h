/* SPDX-License-Identifier: MIT */
/*
 * ld_abi.h - the structures shared by the C core and the Lua library.
 *
 * This header is read by the C compiler AND by LuaJIT's ffi.cdef: the part
 * between the LD_ABI_BEGIN and LD_ABI_END markers is copied verbatim into
 * lua/divert/abi.lua by tools/gen_abi.sh, so it must stay plain: enums
 * instead of #define, fixed-width types, no macros, no bit-fields.
 * tests/lua/abi_test.lua checks that ffi.sizeof/offsetof of every struct
 * equals what the C compiler says (tests/tools/abi_dump.c).
 */
#ifndef LD_ABI_H
#define LD_ABI_H

#include <stdint.h>

/* LD_ABI_BEGIN */

enum {
	LD_BATCH_MAX   = 64,     /* packets handed to Lua in one call */
	LD_PACKET_MAX  = 65535,  /* largest packet the kernel copies to us */
	LD_PAYLOAD_MAX = 65531,  /* most bytes a verdict carries back: a netlink
	                          * attribute's 16-bit length minus its 4-byte header */
};

/*
 * Verdicts use the kernel's NF_* numbers so the core passes them through
 * unchanged. LD_QUEUE carries the target queue number in bits 16..31,
 * exactly as the kernel's NF_QUEUE_NR() encoding does.
 */
enum ld_verdict {
	LD_DROP   = 0,  /* NF_DROP */
	LD_PASS   = 1,  /* NF_ACCEPT */
	LD_QUEUE  = 3,  /* NF_QUEUE, queue number << 16 */
	LD_REPEAT = 4,  /* NF_REPEAT: traverse the hook again */
	LD_OFFLOAD = 6, /* not a kernel verdict: pass, and the rest of the connection
	                 * skips the queue. The core sends NF_REPEAT with the offload
	                 * mark; luadivert's rules save it to conntrack (core/offload.h) */
};

/*
 * divert.OFFLOAD marks a connection with a generation in these bits of the
 * packet mark, then (by the rules) of the conntrack mark. A reload moves
 * to the next generation 1..LD_OFFLOAD_GEN_MAX, so flows offloaded before
 * it come back to the queue. Keep these bits free in your own marks; they
 * are clear of the default skip mark (LD_RULES_SKIP_MARK_DEFAULT, 0x4c440000).
 */
enum {
	LD_OFFLOAD_MARK_MASK  = 0x03800000,
	LD_OFFLOAD_MARK_SHIFT = 23,
	LD_OFFLOAD_GEN_MAX    = 7,
};

/* What the kernel told us about a packet (struct ld_packet.flags). */
enum ld_packet_flag {
	LD_PKT_GSO           = 1,   /* NFQA_SKB_GSO: a GSO packet, may exceed the MTU */
	LD_PKT_CSUM_NOTREADY = 2,   /* NFQA_SKB_CSUMNOTREADY: L4 checksum not filled in yet */
	/* 4: unused (NFQA_SKB_CSUM_NOTVERIFIED was copied here and never read) */
	LD_PKT_HAS_UID       = 8,   /* uid is valid (socket owner known) */
	LD_PKT_HAS_GID       = 16,  /* gid is valid */
	LD_PKT_HAS_CT        = 32,  /* ct_info and ct_mark are valid */
	LD_PKT_TRUNCATED     = 64,  /* len < orig_len: bytes beyond len were not copied */
};

/* What the policy asked for besides the verdict (struct ld_packet.set). */
enum ld_packet_set {
	LD_SET_MARK     = 1,   /* send new_mark as the packet mark */
	LD_SET_CT_MARK  = 2,   /* send new_ct_mark as the conntrack mark */
	LD_SET_MODIFIED = 4,   /* bytes or length changed: send data[0..len) back */
	LD_SET_HOLD     = 8,   /* keep the packet queued for hold_ns, then verdict */
};

/*
 * One queued packet. The core fills the first part from the netlink
 * message; data points INTO the receive buffer (no copy). The policy fills
 * the second part; the core turns it into the verdict message.
 */
struct ld_packet {
	uint8_t  *data;        /* packet bytes, starting at the IP header */
	uint32_t  len;         /* bytes valid at data; the policy may change it (<= cap) */
	uint32_t  cap;         /* bytes writable at data (room to grow in place) */
	uint32_t  orig_len;    /* length of the packet on the wire (>= len when truncated) */
	uint32_t  id;          /* the kernel's packet id, used in the verdict */
	uint32_t  mark;        /* skb mark when queued */
	uint32_t  ct_mark;     /* conntrack mark (LD_PKT_HAS_CT) */
	uint32_t  ct_info;     /* enum ip_conntrack_info (LD_PKT_HAS_CT) */
	uint32_t  uid;         /* socket owner uid (LD_PKT_HAS_UID) */
	uint32_t  gid;         /* socket owner gid (LD_PKT_HAS_GID) */
	uint32_t  indev;       /* input ifindex, 0 if none */
	uint32_t  outdev;      /* output ifindex, 0 if none */
	uint16_t  hw_proto;    /* ETH_P_IP / ETH_P_IPV6, host order */
	uint8_t   hook;        /* NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING */
	uint8_t   flags;       /* enum ld_packet_flag */
	uint64_t  tstamp_ns;   /* when the core received it (or capture time in replay) */

	/* written by the policy */
	uint32_t  verdict;     /* enum ld_verdict; preset to the default verdict */
	uint32_t  set;         /* enum ld_packet_set */
	uint32_t  new_mark;    /* LD_SET_MARK */
	uint32_t  new_ct_mark; /* LD_SET_CT_MARK */
	uint64_t  hold_ns;     /* LD_SET_HOLD: delay before the verdict is sent */
	uint32_t  dup;         /* extra copies to inject after the verdict */
	uint32_t  reserved;
};

/*
 * A batch handed to Lua. One per worker, allocated once; the dispatch
 * function learns its address at start-up and reads n/next on every call.
 */
struct ld_batch {
	struct ld_packet *pkts;   /* LD_BATCH_MAX descriptors */
	uint32_t  n;              /* packets in this batch */
	uint32_t  next;           /* index being handled; on a Lua error the core
	                           * gives pkts[next] the default verdict and resumes */
	uint32_t  queue;          /* queue number of this worker */
	uint32_t  default_verdict;
	uint64_t  now_ns;         /* clock at dispatch (CLOCK_MONOTONIC, or virtual) */
	struct ld_metric_tables *metrics; /* per-pipe and policy metrics (divert.metrics),
	                           * NULL when the host keeps none */
};

/*
 * Metrics the Lua side keeps for the C side to export (core/metrics_render.c):
 * one table per worker, written by Lua without allocation on the packet path
 * (lua/divert/metrics.lua), read by C without a lock. Values are doubles so
 * that Lua updates them without boxing 64-bit integers (exact to 2^53).
 * A reader may see a value one update old; never a torn slot list, because
 * Lua fills a slot before it raises npipes/nuser.
 */
enum {
	LD_PIPES_MAX        = 32,    /* named pipes with metrics */
	LD_NAME_MAX         = 48,    /* bytes of a pipe or metric name, NUL included */
	LD_LABELS_MAX       = 160,   /* rendered labels k="v",k2="v2", NUL included */
	LD_USER_METRICS_MAX = 128,   /* policy-defined counters and gauges */
	LD_DELAY_BUCKETS    = 16,    /* added-delay histogram buckets; the last is +Inf */
	LD_PIPE_RING        = 1024,  /* release times kept to count a pipe's queue (power of 2) */
};

enum ld_metric_kind {
	LD_METRIC_COUNTER = 1,
	LD_METRIC_GAUGE   = 2,
};

struct ld_pipe_metrics {
	char     name[LD_NAME_MAX];  /* shape.pipe{name = ...} */
	double   packets;            /* packets into the pipe */
	double   bytes;              /* their bytes */
	double   lost;               /* dropped by the pipe (loss, limit, throttle) */
	double   delayed;            /* packets given an added delay > 0 */
	double   delay_sum_s;        /* sum of the added delays of packets out, seconds */
	double   delay_count[LD_DELAY_BUCKETS]; /* packets out per bucket (not cumulative) */
	double   ring[LD_PIPE_RING]; /* release times (ns, packet clock) of the last delayed packets */
	uint32_t ring_head;          /* next ring slot to write (counts up, wraps) */
	uint32_t reserved;
};

struct ld_user_metric {
	char     name[LD_NAME_MAX];     /* divert.metrics.counter("name", ...) */
	char     labels[LD_LABELS_MAX]; /* rendered, escaped: k="v",k2="v2" */
	uint32_t kind;                  /* enum ld_metric_kind */
	uint32_t reserved;
	double   value;
};

struct ld_metric_tables {
	uint32_t npipes;                       /* pipe slots in use */
	uint32_t nuser;                        /* user metric slots in use */
	double   delay_le_s[LD_DELAY_BUCKETS]; /* upper bound of each delay bucket (s); last unused */
	struct ld_pipe_metrics pipes[LD_PIPES_MAX];
	struct ld_user_metric  user[LD_USER_METRICS_MAX];
};

/* LD_ABI_END */

#endif /* LD_ABI_H */

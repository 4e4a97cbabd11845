/* SPDX-License-Identifier: MIT */
/*
 * replay_priv.h - what the parts of `luadivert replay` share: the state of
 * one run (struct rp) and the functions each part gives the others.
 *
 *   replay_cli.c     the command line (rp_parse)
 *   replay_files.c   opening the input capture (pcap or pcapng, file or pipe)
 *                    and the outputs
 *   replay.c         the loop: records -> batches -> the policy -> release
 *                    order (the virtual clock and the held packets)
 *   replay_report.c  the progress bar, the summary, verdict names
 *   replay_writer.c, replay_store.c, replay_link*.c: pcap output, the held
 *                    frames, link headers
 *
 * Not an interface for anything outside replay.
 */
#ifndef LD_REPLAY_PRIV_H
#define LD_REPLAY_PRIV_H

#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "counters.h"
#include "ld_abi.h"
#include "log.h"
#include "lua_host.h"
#include "lua_inject.h"
#include "observe.h"
#include "replay_link.h"
#include "replay_store.h"
#include "replay_writer.h"
#include "timer_heap.h"

#define RP_NS_PER_SEC 1000000000ull

enum {
	RP_STRIDE      = LD_LINK_HDR_MAX + LD_PACKET_MAX, /* headroom for the link header + packet */
	RP_ARENA       = 8 << 20,          /* original records of one batch */
	RP_RECS        = 4 * LD_BATCH_MAX, /* records (IP or not) in one batch */
	RP_MAX_HELD    = 1 << 20,          /* default --max-held */
	RP_DUP_MAX     = 65535,            /* extra copies of one packet, as pkt:duplicate() allows */
	RP_SET_INJECTED = 1 << 30,        /* held entry made by divert.inject() */
	RP_SLOT_HDR    = 8,                /* caplen(4) wirelen(4) in front of a held frame */
	RP_PEEK        = 4096,             /* bytes read to learn the timestamp resolution */
	RP_BAR         = 30,               /* progress bar width */
	RP_VERDICT     = 0xff,             /* the kernel's NF_VERDICT_MASK: the rest is a queue number */
	PCAPNG_IDB     = 1,                /* interface description block */
	PCAPNG_TSRESOL = 9,                /* if_tsresol option code */
};

static const uint32_t PCAPNG_SHB    = 0x0a0d0d0au;  /* section header block type */
static const uint32_t PCAPNG_BOM    = 0x1a2b3c4du;  /* byte-order magic */
static const uint32_t PCAP_MAGIC_NS = 0xa1b23c4du;  /* pcap with nanoseconds */

#define RP_PROGRESS_NS 200000000ull       /* progress bar refresh: 5 per second */

enum { OPT_VERDICTS = 256, OPT_SEED, OPT_BATCH, OPT_DEFAULT, OPT_SNAPLEN, OPT_MAX_HELD, OPT_LUA_DIR,
       OPT_RECORD, OPT_RECORD_MAX, OPT_REPORT };

/* One input record of the batch being handled, IP or not. */
struct rp_rec {
	uint64_t ts_ns;     /* capture time */
	uint32_t num;       /* record number in the input, from 1 */
	uint32_t off;       /* where its bytes are in the arena */
	uint32_t caplen;    /* captured bytes (link header included) */
	uint32_t wirelen;   /* length on the wire */
	uint32_t hdr_len;   /* link header (IP records) */
	uint32_t ip_len;    /* bytes handed to the policy */
	uint32_t ip_orig;   /* orig_len handed to the policy */
	int32_t  pkt;       /* index in the batch, -1 when not IP */
};

struct rp_stats {
	uint64_t records, ip, nonip, truncated;
	uint64_t pass, drop, queue, repeat, other;
	uint64_t modified, refused, marked, held, overflow, dups, errors;
	uint64_t bytes_in, bytes_out, written;
	uint64_t injected;        /* divert.inject() packets written */
};

/* The head of a pipe, read to learn the timestamp resolution, and replayed. */
struct rp_peek {
	FILE *src;
	uint8_t b[RP_PEEK];
	size_t n, pos;
};

struct rp {
	/* options */
	const char *policy, *in_path, *out_path, *verdicts_path, *lua_dir, *seed;
	uint32_t batch_max, default_verdict, max_held;
	long snaplen;
	int quiet;
	struct ld_log_limit lim;  /* policy errors and refusals, as live */

	/* files */
	FILE *in_file;
	struct rp_peek peek;      /* stays put while libpcap reads a pipe through it */
	pcap_t *in;
	struct ld_pcap_out out;
	FILE *vf;
	int dlt, nano, progress, pcapng;
	uint32_t snap_out;
	off_t in_size;

	/* the batch handed to Lua, and the bytes behind it */
	struct ld_lua *lua;
	struct ld_batch batch;
	struct ld_inject_sink sink;  /* divert.inject(): rp_inject */
	struct ld_packet pkts[LD_BATCH_MAX];
	uint8_t *pbuf;            /* LD_BATCH_MAX * RP_STRIDE */
	uint8_t *arena;           /* original records of this batch */
	uint32_t arena_used;
	struct rp_rec rec[RP_RECS];
	uint32_t nrec;

	/* held packets */
	struct ld_heap heap;
	struct ld_rstore store;

	struct rp_stats st;
	/* issue 13: --record / --report, on the capture's clock */
	struct ld_obs_cfg obs_cfg;
	struct ld_obs *obs;
	struct ld_counters oc;    /* st as the report reads counters */
	uint64_t last_ts;
	uint64_t t_start, t_shown;
	char read_err[PCAP_ERRBUF_SIZE + 64];
	int failed;               /* a write or memory error: stop */
	uint64_t ts_overflow;     /* records whose time stamp a pcap file cannot hold */
};

/* replay_cli.c */
/**
 * rp_usage() - the --help text
 * @f: where to print it
 */
void rp_usage(FILE *f);
/**
 * rp_parse() - fill @r from the command line
 * @r: the run (zeroed)
 * @argc: argument count
 * @argv: arguments, from the word after "replay"
 *
 * Return: 0, 2 on bad usage (the message is printed), -1 after --help.
 */
int rp_parse(struct rp *r, int argc, char **argv);

/* replay_files.c */
/**
 * rp_open_input() - open the input capture (a file, or - for a pipe) with libpcap
 * @r: the run
 *
 * Return: 0, or -1 after the message.
 */
int rp_open_input(struct rp *r);
/**
 * rp_open_output() - create the output capture and the --verdicts file
 * @r: the run, input open
 *
 * Return: 0, or -1 after the message.
 */
int rp_open_output(struct rp *r);

/* replay_report.c */
/**
 * rp_clock_ns() - CLOCK_MONOTONIC in ns (0 if it fails): the progress bar's clock
 *
 * Return: nanoseconds.
 */
uint64_t rp_clock_ns(void);
/**
 * rp_verdict_name() - "pass", "drop", "queue:N", ... for --verdicts
 * @v: verdict
 * @buf: room for a made-up name
 * @n: size of @buf
 *
 * Return: the name.
 */
const char *rp_verdict_name(uint32_t v, char *buf, size_t n);
/**
 * rp_count_verdict() - count @v in the summary's statistics
 * @st: statistics
 * @v: verdict
 */
void rp_count_verdict(struct rp_stats *st, uint32_t v);
/**
 * rp_progress() - redraw the progress bar on a terminal (5 times a second)
 * @r: the run
 * @last: 1: the final state, then a newline
 */
void rp_progress(struct rp *r, int last);
/**
 * rp_summary() - the lines printed at the end
 * @r: the run
 * @el: wall time it took, ns
 */
void rp_summary(const struct rp *r, uint64_t el);

#endif /* LD_REPLAY_PRIV_H */

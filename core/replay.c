// SPDX-License-Identifier: MIT
/*
 * replay.c - `luadivert replay POLICY IN.pcap -w OUT.pcap`: run a policy over
 * the packets of a capture file, without root and without a network.
 *
 * The policy runs in the same Lua host, through the same batch dispatch, as
 * on live traffic (lua_host.h): records are read with libpcap, the IP packet
 * behind each link header is copied into a per-batch buffer with room to grow
 * to 64 KiB (as NFQUEUE would hand it over), and Lua is called once per batch.
 *
 * Time is virtual: a packet's tstamp_ns is its capture time. A packet that is
 * not held is "released" at its capture time; a held one at capture time +
 * hold_ns. Before each record's outcome is written, every held packet due at
 * or before its capture time is written first, so the output is in release
 * order and carries release times as timestamps:
 *
 *   record:   r1(t=0)  r2(t=10, hold 15)  r3(t=20)  r4(t=30)
 *   output:   r1@0     r3@20              r2@25     r4@30
 *
 * Frames that are not IP go to the output untouched, at their capture time.
 * Live, a held packet waits in the kernel queue; here its frame waits in a
 * slot store (replay_store.h) and its release time in the timer heap.
 */
#include "cli.h"
#include "commands.h"
#include "ld_abi.h"
#include "log.h"
#include "lua_host.h"
#include "observe.h"
#include "observe_cli.h"
#include "record_pcapng.h"
#include "payload_check.h"
#include "replay_link.h"
#include "lua_inject.h"
#include "replay_store.h"
#include "replay_writer.h"
#include "timer_heap.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static void rp_usage(FILE *f)
{
	fputs("usage: luadivert replay POLICY IN.pcap -w OUT.pcap [options]\n"
	      "Run POLICY over the packets of a capture (pcap or pcapng) as NFQUEUE would hand\n"
	      "them over, and write what it lets through, in release order, to OUT.pcap.\n"
	      "Time is the capture's: held packets come out at capture time + hold.\n"
	      "  -w, --write FILE            output capture (pcap format; - for standard output)\n"
	      "      --verdicts FILE         one line per input record:\n"
	      "                              record verdict mark len new_len hold_ns dup\n"
	      "      --seed N                seed for the policy's random choices\n"
	      "                              (the policy sees it as LUADIVERT_SEED)\n"
	      "      --batch N               packets per policy call, 1..64 (default 64)\n"
	      "      --default-verdict V     pass or drop: verdict when the handler fails\n"
	      "      --snaplen N             snap length of the output (default: the input's)\n"
	      "      --max-held N            packets held at once; more are dropped and\n"
	      "                              counted (default 1048576)\n"
	      "      --lua-dir DIR           where the divert Lua modules are\n"
	      "      --record FILE.pcapng    every IP packet once, as the policy left it, with\n"
	      "                              its verdict, hold time and 'modified' as comment\n"
	      "      --record-max SIZE       rotate the record at SIZE bytes (k, M, G)\n"
	      "      --report FILE.html      a page with throughput, verdicts, loss and added\n"
	      "                              delay over the capture's time\n"
	      "  -q, --quiet                 no progress bar and no summary\n"
	      "  -h, --help                  this text\n", f);
}

static uint64_t rp_clock_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * RP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Parse an unsigned decimal in [lo, hi]; 0 on success. */
static int rp_number(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "luadivert replay: %s: expected a number from %" PRIu64
			" to %" PRIu64 ", got '%s'\n", opt, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Fill @r from the command line. Return 0, 2 on bad usage, -1 after --help. */
static int rp_parse(struct rp *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "write",           required_argument, NULL, 'w' },
		{ "verdicts",        required_argument, NULL, OPT_VERDICTS },
		{ "seed",            required_argument, NULL, OPT_SEED },
		{ "batch",           required_argument, NULL, OPT_BATCH },
		{ "default-verdict", required_argument, NULL, OPT_DEFAULT },
		{ "snaplen",         required_argument, NULL, OPT_SNAPLEN },
		{ "max-held",        required_argument, NULL, OPT_MAX_HELD },
		{ "lua-dir",         required_argument, NULL, OPT_LUA_DIR },
		{ "record",          required_argument, NULL, OPT_RECORD },
		{ "record-max",      required_argument, NULL, OPT_RECORD_MAX },
		{ "report",          required_argument, NULL, OPT_REPORT },
		{ "quiet",           no_argument,       NULL, 'q' },
		{ "help",            no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	r->batch_max = LD_BATCH_MAX;
	r->default_verdict = LD_PASS;
	r->max_held = RP_MAX_HELD;
	r->snaplen = -1;
	optind = 0;  /* glibc: start over, main() may have parsed already */
	opterr = 0;   /* one message, ours */
	while ((c = getopt_long(argc, argv, "w:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			r->out_path = optarg;
			break;
		case OPT_VERDICTS:
			r->verdicts_path = optarg;
			break;
		case OPT_SEED:
			if (rp_number("--seed", optarg, 0, UINT64_MAX, &v))
				return 2;
			r->seed = optarg;
			break;
		case OPT_BATCH:
			if (rp_number("--batch", optarg, 1, LD_BATCH_MAX, &v))
				return 2;
			r->batch_max = (uint32_t)v;
			break;
		case OPT_DEFAULT:
			if (!strcmp(optarg, "pass")) {
				r->default_verdict = LD_PASS;
			} else if (!strcmp(optarg, "drop")) {
				r->default_verdict = LD_DROP;
			} else {
				fprintf(stderr, "luadivert replay: --default-verdict: pass or drop, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case OPT_SNAPLEN:
			if (rp_number("--snaplen", optarg, 1, INT32_MAX, &v))
				return 2;
			r->snaplen = (long)v;
			break;
		case OPT_MAX_HELD:
			if (rp_number("--max-held", optarg, 1, UINT32_MAX / 2, &v))
				return 2;
			r->max_held = (uint32_t)v;
			break;
		case OPT_LUA_DIR:
			r->lua_dir = optarg;
			break;
		case OPT_RECORD:
			r->obs_cfg.record_path = optarg;
			break;
		case OPT_RECORD_MAX:
			if (ld_parse_size(optarg, LD_RECORD_MIN_SIZE, &r->obs_cfg.record_max)) {
				fprintf(stderr, "luadivert replay: --record-max: '%s' is not a size of at "
					"least 64k\n", optarg);
				return 2;
			}
			break;
		case OPT_REPORT:
			r->obs_cfg.report_path = optarg;
			break;
		case 'q':
			r->quiet = 1;
			break;
		case 'h':
			rp_usage(stdout);
			return -1;
		default:
			fprintf(stderr, "luadivert replay: unknown option or missing value: '%s'\n"
				"Try 'luadivert replay --help'.\n", ld_bad_option(argv));
			return 2;
		}
	}
	if (argc - optind != 2 || !r->out_path) {
		fprintf(stderr, "luadivert replay: %s\n", argc - optind != 2 ?
			"expected a policy and an input capture" : "missing -w OUT.pcap");
		rp_usage(stderr);
		return 2;
	}
	if (r->verdicts_path && !strcmp(r->out_path, "-") && !strcmp(r->verdicts_path, "-")) {
		fprintf(stderr, "luadivert replay: -w - and --verdicts - cannot share standard output\n");
		return 2;
	}
	if (r->obs_cfg.record_max && !r->obs_cfg.record_path) {
		fprintf(stderr, "luadivert replay: --record-max needs --record\n");
		return 2;
	}
	r->policy = argv[optind];
	r->in_path = argv[optind + 1];
	return 0;
}

static uint32_t rd32(const uint8_t *p, int swap)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return swap ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const uint8_t *p, int swap)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return swap ? __builtin_bswap16(v) : v;
}

/*
 * pcapng: does the first interface record (IDB) ask for a resolution finer
 * than a microsecond? Blocks: type(4) length(4) body length(4); the SHB body
 * starts with the byte-order magic, the IDB body with linktype(2)
 * reserved(2) snaplen(4) and then options code(2) len(2) value (padded to 4).
 */
static int rp_pcapng_nano(const uint8_t *b, size_t n)
{
	uint32_t shb_len, idb_len, off, end;
	int swap;

	if (n < 12)
		return 1;
	swap = rd32(b + 8, 0) != PCAPNG_BOM;
	shb_len = rd32(b + 4, swap);
	if (shb_len < 28 || (size_t)shb_len + 16 > n || rd32(b + shb_len, swap) != PCAPNG_IDB)
		return 1;  /* cannot tell: keep nanoseconds, which lose nothing */
	idb_len = rd32(b + shb_len + 4, swap);
	if ((size_t)shb_len + idb_len > n || idb_len < 20)
		return 1;
	off = shb_len + 16;
	end = shb_len + idb_len - 4;
	while (off + 4 <= end) {
		uint16_t code = rd16(b + off, swap), len = rd16(b + off + 2, swap);

		if (code == 0 || off + 4 + len > end)
			break;
		if (code == PCAPNG_TSRESOL && len >= 1) {
			uint8_t res = b[off + 4];

			/* high bit: a power of two, else a power of ten, negative */
			return res & 0x80 ? (res & 0x7f) > 20 : res > 6;
		}
		off += 4 + ((len + 3u) & ~3u);
	}
	return 0;  /* the default resolution is 10^-6 */
}

/*
 * A pipe cannot be rewound: the bytes read to look at its header are served
 * again through a stdio cookie, then the rest of the pipe.
 */
static ssize_t rp_peek_read(void *cookie, char *buf, size_t size)
{
	struct rp_peek *pk = cookie;
	size_t k;

	if (pk->pos < pk->n) {
		k = pk->n - pk->pos < size ? pk->n - pk->pos : size;
		memcpy(buf, pk->b + pk->pos, k);
		pk->pos += k;
		return (ssize_t)k;
	}
	k = fread(buf, 1, size, pk->src);
	return k == 0 && ferror(pk->src) ? -1 : (ssize_t)k;
}

static int rp_peek_close(void *cookie)
{
	struct rp_peek *pk = cookie;

	return pk->src == stdin ? 0 : fclose(pk->src);
}

/*
 * Should the output carry nanoseconds? Yes when the input does: a
 * nanosecond pcap, or a pcapng whose first interface has a finer
 * if_tsresol. *fp is rewound, or replaced by a cookie stream for a pipe.
 * Return: 1 or 0, or -1 on a read error (errno set).
 */
static int rp_input_nano(struct rp *r, FILE **fp)
{
	static const cookie_io_functions_t io = { .read = rp_peek_read, .close = rp_peek_close };
	struct rp_peek *pk = &r->peek;
	FILE *f = *fp, *c;
	uint32_t magic;
	int seekable = !fseeko(f, 0, SEEK_CUR);

	pk->n = fread(pk->b, 1, sizeof(pk->b), f);
	if (ferror(f) || (seekable && fseeko(f, 0, SEEK_SET)))
		return -1;
	if (!seekable) {
		pk->src = f;
		pk->pos = 0;
		c = fopencookie(pk, "rb", io);
		if (!c)
			return -1;
		*fp = c;
	}
	if (pk->n < 4)
		return 0;
	memcpy(&magic, pk->b, sizeof(magic));
	if (magic == PCAP_MAGIC_NS || magic == __builtin_bswap32(PCAP_MAGIC_NS))
		return 1;
	if (magic == PCAPNG_SHB) {
		r->pcapng = 1;
		return rp_pcapng_nano(pk->b, pk->n);
	}
	return 0;
}

static int rp_open_input(struct rp *r)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct stat sb;
	const char *name;
	int snap;

	r->in_file = strcmp(r->in_path, "-") ? fopen(r->in_path, "rb") : stdin;
	if (!r->in_file) {
		fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		return -1;
	}
	if (!fstat(fileno(r->in_file), &sb) && S_ISREG(sb.st_mode))
		r->in_size = sb.st_size;
	r->nano = rp_input_nano(r, &r->in_file);
	if (r->nano < 0) {
		fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		if (r->in_file != stdin && fclose(r->in_file))
			fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		r->in_file = NULL;
		return -1;
	}
	errbuf[0] = 0;
	r->in = pcap_fopen_offline_with_tstamp_precision(r->in_file, PCAP_TSTAMP_PRECISION_NANO,
							  errbuf);
	if (!r->in) {
		fprintf(stderr, "luadivert replay: %s: not a readable capture: %s\n", r->in_path,
			errbuf);
		if (r->in_file != stdin && fclose(r->in_file))
			fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		r->in_file = NULL;
		return -1;
	}
	r->in_file = NULL;  /* libpcap owns it now */
	r->dlt = pcap_datalink(r->in);
	if (!ld_link_supported(r->dlt)) {
		name = pcap_datalink_val_to_name(r->dlt);
		fprintf(stderr, "luadivert replay: %s: link type %d (%s) is not supported; replay reads "
			"Ethernet (with VLAN tags), raw IP, Linux cooked (SLL, SLL2), BSD loopback, "
			"PPP, NFLOG and Cisco HDLC captures\n", r->in_path, r->dlt, name ? name : "unknown");
		return -1;
	}
	snap = pcap_snapshot(r->in);
	r->snap_out = r->snaplen > 0 ? (uint32_t)r->snaplen : snap > 0 ? (uint32_t)snap : LD_PACKET_MAX;
	return 0;
}

/* Refuse to truncate the file we are about to read. */
static int rp_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, "-") || !strcmp(b, "-"))
		return 0;
	if (stat(a, &sa) || stat(b, &sb))
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int rp_open_output(struct rp *r)
{
	if (rp_same_file(r->in_path, r->out_path)) {
		fprintf(stderr, "luadivert replay: %s: the output would overwrite the input\n",
			r->out_path);
		return -1;
	}
	char err[4200];

	/* the input's link-type FCS/flag bits go to the output too */
	if (ld_pcap_out_open(&r->out, r->out_path, r->dlt, (uint32_t)pcap_datalink_ext(r->in),
			     r->snap_out, r->nano, err, sizeof(err)) < 0) {
		fprintf(stderr, "luadivert replay: %s\n", err);
		return -1;
	}
	if (r->verdicts_path) {
		r->vf = strcmp(r->verdicts_path, "-") ? fopen(r->verdicts_path, "w") : stdout;
		if (!r->vf) {
			fprintf(stderr, "luadivert replay: %s: %s\n", r->verdicts_path, strerror(errno));
			return -1;
		}
		fputs("# record verdict mark len new_len hold_ns dup\n", r->vf);
	}
	return 0;
}

/* Buffers for one batch and the held packets: allocated once, here. */
static int rp_alloc(struct rp *r)
{
	r->pbuf = malloc((size_t)LD_BATCH_MAX * RP_STRIDE);
	r->arena = malloc(RP_ARENA);
	if (!r->pbuf || !r->arena || ld_heap_init(&r->heap, r->max_held)) {
		fprintf(stderr, "luadivert replay: out of memory\n");
		return -1;
	}
	ld_rstore_init(&r->store);
	r->obs_cfg.offline = 1;
	{
		char err[512];

		r->obs = ld_obs_new(&r->obs_cfg, 0, r->default_verdict, &r->oc, err, sizeof(err));
		if (!r->obs) {
			fprintf(stderr, "luadivert replay: %s\n", err);
			return -1;
		}
	}
	r->batch.metrics = ld_obs_tables(r->obs);
	r->batch.pkts = r->pkts;
	r->batch.default_verdict = r->default_verdict;
	return 0;
}

static uint8_t *rp_pkt_data(struct rp *r, uint32_t i)
{
	return r->pbuf + (size_t)i * RP_STRIDE + LD_LINK_HDR_MAX;
}

static void rp_write(struct rp *r, uint64_t ts_ns, const uint8_t *frame, uint32_t caplen,
		     uint32_t wirelen)
{
	if (ld_pcap_out_write(&r->out, ts_ns, frame, caplen, wirelen) < 0) {
		if (errno == EOVERFLOW && !r->ts_overflow++)
			fprintf(stderr, "luadivert replay: a record's time stamp (%" PRIu64 " s) is "
				"past what a pcap file holds (2^32 s, 2106-02-07): such records are "
				"not written\n", (uint64_t)(ts_ns / RP_NS_PER_SEC));
		r->failed |= errno != EOVERFLOW;
		r->st.errors++;
		return;
	}
	r->st.written++;
	r->st.bytes_out += caplen;
}

/* Write a released packet: nothing when dropped, else 1 + dup copies. */
static void rp_emit(struct rp *r, uint64_t ts_ns, uint32_t verdict, uint32_t dup,
		    const uint8_t *frame, uint32_t caplen, uint32_t wirelen)
{
	if ((verdict & RP_VERDICT) == LD_DROP)
		return;
	if (dup > RP_DUP_MAX)
		dup = RP_DUP_MAX;
	for (uint32_t i = 0; i <= dup; i++)
		rp_write(r, ts_ns, frame, caplen, wirelen);
	r->st.dups += dup;
}

/*
 * Write every held packet due at or before @t, in due order, stopping at a
 * packet divert.inject() made while the policy handled record @rec_num or a
 * later one: that one goes out right after its record.
 */
static void rp_release_until(struct rp *r, uint64_t t, uint32_t rec_num)
{
	const struct ld_held *top;
	struct ld_held h;
	uint32_t wirelen;
	uint8_t *m;

	while ((top = ld_heap_peek(&r->heap)) && top->due_ns <= t &&
	       !((top->set & RP_SET_INJECTED) && top->id >= rec_num)) {
		ld_heap_pop(&r->heap, &h);
		m = ld_rstore_ptr(&r->store, h.slot);
		memcpy(&wirelen, m + 4, sizeof(wirelen));
		rp_emit(r, h.due_ns, h.verdict, h.dup, m + RP_SLOT_HDR, h.len, wirelen);
		ld_rstore_put(&r->store, h.slot);
	}
}

static const char *rp_verdict_name(uint32_t v, char *buf, size_t n)
{
	switch (v & RP_VERDICT) {
	case LD_DROP:
		return "DROP";
	case LD_PASS:
		return "PASS";
	case LD_REPEAT:
		return "REPEAT";
	case LD_OFFLOAD:
		return "OFFLOAD";
	case LD_QUEUE:
		snprintf(buf, n, "QUEUE:%u", v >> 16);
		return buf;
	default:
		snprintf(buf, n, "VERDICT:%u", v);
		return buf;
	}
}

static void rp_count_verdict(struct rp_stats *st, uint32_t v)
{
	switch (v & RP_VERDICT) {
	case LD_DROP:
		st->drop++;
		break;
	case LD_PASS:
	case LD_OFFLOAD:   /* no connection to offload in a capture: a pass */
		st->pass++;
		break;
	case LD_QUEUE:
		st->queue++;
		break;
	case LD_REPEAT:
		st->repeat++;
		break;
	default:
		st->other++;
		break;
	}
}

/*
 * The frame to write for an IP record: the original record when the policy
 * did not change the packet, else the original link header followed by the
 * new bytes (built in the headroom in front of them). As live (worker.c),
 * new bytes of a packet we only had part of, or of an empty or oversized
 * packet, are not used: the original goes out and the refusal is counted.
 */
static const uint8_t *rp_frame(struct rp *r, const struct rp_rec *rec, struct ld_packet *p,
			       uint32_t *caplen, uint32_t *wirelen)
{
	uint8_t *data = rp_pkt_data(r, (uint32_t)rec->pkt);
	uint32_t pad;

	const char *why = (p->set & LD_SET_MODIFIED)
		? ld_payload_refusal(p->len, p->cap, rec->ip_len < rec->ip_orig) : NULL;

	if (why) {
		p->set &= ~(uint32_t)LD_SET_MODIFIED;
		r->st.refused++;
		r->st.errors++;
		ld_log_limited(&r->lim, "record %u: modified bytes not used (%s)", rec->num, why);
	}
	if (!(p->set & LD_SET_MODIFIED)) {
		*caplen = rec->caplen;
		*wirelen = rec->wirelen;
		return r->arena + rec->off;
	}
	memcpy(data - rec->hdr_len, r->arena + rec->off, rec->hdr_len);
	pad = ld_link_set_ip_len(r->dlt, data - rec->hdr_len, rec->hdr_len, p->len);
	memset(data + p->len, 0, pad);     /* room: p->len <= LD_PAYLOAD_MAX */
	*caplen = rec->hdr_len + p->len + pad;
	*wirelen = *caplen;
	if (*caplen > r->snap_out)
		*caplen = r->snap_out;
	return data - rec->hdr_len;
}

/* Keep a frame until its release time. Return 0, 1 when the heap is full, -1 on error. */
static int rp_hold(struct rp *r, const struct rp_rec *rec, const struct ld_packet *p,
		   const uint8_t *frame, uint32_t caplen, uint32_t wirelen)
{
	struct ld_held e;
	uint8_t *m;

	memset(&e, 0, sizeof(e));
	m = ld_rstore_get(&r->store, RP_SLOT_HDR + (size_t)caplen, &e.slot);
	if (!m) {
		fprintf(stderr, "luadivert replay: record %u: cannot hold %u bytes: %s\n",
			rec->num, caplen, strerror(errno));
		return -1;
	}
	memcpy(m, &caplen, sizeof(caplen));
	memcpy(m + 4, &wirelen, sizeof(wirelen));
	memcpy(m + RP_SLOT_HDR, frame, caplen);
	e.due_ns = rec->ts_ns + p->hold_ns < rec->ts_ns ? UINT64_MAX : rec->ts_ns + p->hold_ns;
	e.id = rec->num;
	e.verdict = p->verdict;
	e.set = p->set & ~(uint32_t)LD_SET_HOLD;
	e.new_mark = p->new_mark;
	e.new_ct_mark = p->new_ct_mark;
	e.len = caplen;
	e.dup = p->dup;
	if (ld_heap_push(&r->heap, &e)) {
		ld_rstore_put(&r->store, e.slot);
		return 1;
	}
	return 0;
}

/*
 * divert.inject() in replay: the packet goes to the output at the time of
 * the packet being handled, behind that packet's link header, through the
 * hold heap (due now), so it is written in time order with everything else.
 */
static int rp_inject(void *ctx, const uint8_t *pkt, uint32_t len, int inbound,
		     uint32_t ifindex)
{
	struct rp *r = ctx;
	const struct rp_rec *rec = NULL;
	struct ld_held e;
	uint32_t i, caplen;
	uint8_t *m;

	(void)inbound;
	(void)ifindex;
	if (!r->batch.n)
		return -ENOTCONN;
	i = r->batch.next < r->batch.n ? r->batch.next : r->batch.n - 1;
	for (uint32_t k = 0; k < r->nrec && !rec; k++)
		if (r->rec[k].pkt == (int32_t)i)
			rec = &r->rec[k];
	if (!rec)
		return -ENOTCONN;
	caplen = rec->hdr_len + len;
	memset(&e, 0, sizeof(e));
	m = ld_rstore_get(&r->store, RP_SLOT_HDR + (size_t)caplen, &e.slot);
	if (!m)
		return -ENOMEM;
	memcpy(m, &caplen, sizeof(caplen));
	memcpy(m + 4, &caplen, sizeof(caplen));
	memcpy(m + RP_SLOT_HDR, r->arena + rec->off, rec->hdr_len);
	memcpy(m + RP_SLOT_HDR + rec->hdr_len, pkt, len);
	/* An Ethernet header of the other IP version says so. */
	if (r->dlt == DLT_EN10MB && rec->hdr_len == 14) {
		m[RP_SLOT_HDR + 12] = pkt[0] >> 4 == 6 ? 0x86 : 0x08;
		m[RP_SLOT_HDR + 13] = pkt[0] >> 4 == 6 ? 0xdd : 0x00;
	}
	if (caplen > r->snap_out)
		caplen = r->snap_out;
	e.due_ns = r->pkts[i].tstamp_ns;
	e.id = rec->num;
	e.verdict = LD_PASS;
	e.set = RP_SET_INJECTED;
	e.len = caplen;
	if (ld_heap_push(&r->heap, &e)) {
		ld_rstore_put(&r->store, e.slot);
		return -ENOBUFS;
	}
	r->st.injected++;
	return 0;
}

/* Act on the policy's decision for one IP record. */
static void rp_decide(struct rp *r, const struct rp_rec *rec, struct ld_packet *p)
{
	const uint8_t *frame;
	uint32_t caplen, wirelen;
	char vbuf[32];
	const char *vname;
	int held = 0;

	rp_count_verdict(&r->st, p->verdict);
	r->st.marked += !!(p->set & LD_SET_MARK);
	frame = rp_frame(r, rec, p, &caplen, &wirelen);
	r->st.modified += !!(p->set & LD_SET_MODIFIED);
	if (p->set & LD_SET_HOLD) {
		held = rp_hold(r, rec, p, frame, caplen, wirelen);
		if (held < 0)
			r->failed = 1;
		else if (held)
			r->st.overflow++;
		else
			r->st.held++;
	} else {
		rp_emit(r, rec->ts_ns, p->verdict, p->dup, frame, caplen, wirelen);
	}
	if (r->obs_cfg.record_path) {
		/* issue 13: the same comment as live; a hold that did not fit is a drop */
		struct ld_packet q = *p;

		if (held > 0) {
			q.verdict = LD_DROP;
			q.set &= ~(uint32_t)LD_SET_HOLD;
		}
		ld_obs_record_one(r->obs, &q, rec->ts_ns);
	}
	if (r->vf) {
		vname = held > 0 ? "OVERFLOW" : rp_verdict_name(p->verdict, vbuf, sizeof(vbuf));
		fprintf(r->vf, "%u %s 0x%x %u %u %" PRIu64 " %u\n", rec->num, vname,
			p->set & LD_SET_MARK ? p->new_mark : p->mark, rec->ip_len,
			p->set & LD_SET_MODIFIED ? p->len : rec->ip_len,
			p->set & LD_SET_HOLD ? p->hold_ns : 0, p->dup);
	}
}

/* issue 13: the replay's stats as the counters --report samples. */
static void rp_obs_counters(struct rp *r)
{
	const struct rp_stats *st = &r->st;

	r->oc.received = st->ip;
	r->oc.passed = st->pass + st->queue + st->repeat + st->other;
	r->oc.repeated = st->repeat;
	r->oc.queued = st->queue;
	r->oc.dropped = st->drop + st->overflow;
	r->oc.held = st->held;
	r->oc.hold_overflow = st->overflow;
	r->oc.modified = st->modified;
	r->oc.errors = r->oc.defaulted = st->errors;
	r->oc.bytes_received = st->bytes_in;
}

/* Run the policy over the batch, then write (or hold) each record in order. */
static void rp_flush(struct rp *r)
{
	struct rp_rec *rec;

	if (!r->nrec)
		return;
	ld_obs_tick(r->obs, r->rec[0].ts_ns);   /* issue 13: report samples on the capture clock */
	if (r->batch.n) {
		r->batch.next = 0;
		r->batch.now_ns = r->pkts[r->batch.n - 1].tstamp_ns;
		r->st.errors += ld_lua_dispatch(r->lua);
	}
	for (uint32_t k = 0; k < r->nrec && !r->failed; k++) {
		rec = &r->rec[k];
		rp_release_until(r, rec->ts_ns, rec->num);
		if (rec->pkt >= 0) {
			rp_decide(r, rec, &r->pkts[rec->pkt]);
			/* what the policy injected while handling it */
			rp_release_until(r, rec->ts_ns, rec->num + 1);
			continue;
		}
		rp_write(r, rec->ts_ns, r->arena + rec->off, rec->caplen, rec->wirelen);
		if (r->vf)
			fprintf(r->vf, "%u NONIP - %u %u 0 0\n", rec->num, rec->caplen, rec->caplen);
	}
	if (r->nrec) {
		r->last_ts = r->rec[r->nrec - 1].ts_ns;
		rp_obs_counters(r);
		ld_obs_tick(r->obs, r->last_ts);
	}
	r->nrec = 0;
	r->batch.n = 0;
	r->arena_used = 0;
	/* a full disk stops the replay; rp_close() says why */
	if (r->out.f && ferror(r->out.f))
		r->failed = 1;
}

/* Hand the IP packet of @rec to the next descriptor of the batch. */
static void rp_add_ip(struct rp *r, struct rp_rec *rec, const struct ld_link_l3 *l3)
{
	const uint8_t *ip = r->arena + rec->off + l3->hdr_len;
	uint32_t i = r->batch.n++;
	uint32_t ipcap = rec->caplen - l3->hdr_len;
	uint32_t ipwire = (rec->wirelen > rec->caplen ? rec->wirelen : rec->caplen) - l3->hdr_len;
	uint32_t decl = ld_link_ip_len(l3->hw_proto, ip, ipcap);
	struct ld_packet *p = &r->pkts[i];

	/* The kernel hands over the IP packet without link padding: trim it. */
	if (decl && decl < ipcap)
		ipcap = ipwire = decl;
	else if (decl && decl < ipwire)
		ipwire = decl;
	if (ipcap > LD_PACKET_MAX)
		ipcap = LD_PACKET_MAX;
	memcpy(rp_pkt_data(r, i), ip, ipcap);
	memset(p, 0, sizeof(*p));
	p->data = rp_pkt_data(r, i);
	p->len = ipcap;
	p->cap = LD_PACKET_MAX;
	p->orig_len = ipwire;
	p->id = rec->num;
	p->hw_proto = l3->hw_proto;
	p->flags = ipcap < ipwire ? LD_PKT_TRUNCATED : 0;
	p->tstamp_ns = rec->ts_ns;
	p->verdict = r->default_verdict;
	rec->pkt = (int32_t)i;
	rec->hdr_len = l3->hdr_len;
	rec->ip_len = ipcap;
	rec->ip_orig = ipwire;
	r->st.ip++;
	r->st.truncated += ipcap < ipwire;
}

/*
 * A record's time stamp in ns. A pcap file stores unsigned 32-bit seconds,
 * which libpcap hands over as a signed number: from 2^31 s (2038-01-19)
 * on they come out negative. pcapng has 64 bits and needs no help.
 */
static uint64_t rp_ts_ns(const struct rp *r, const struct pcap_pkthdr *h)
{
	uint64_t sec = (uint64_t)h->ts.tv_sec;

	if (!r->pcapng && h->ts.tv_sec < 0)
		sec = (uint32_t)h->ts.tv_sec;
	return sec * RP_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
}

/* Take one record from libpcap into the batch. */
static void rp_add(struct rp *r, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct ld_link_l3 l3;
	struct rp_rec *rec;
	uint32_t caplen = h->caplen;

	if (r->nrec == RP_RECS || (uint64_t)r->arena_used + caplen > RP_ARENA)
		rp_flush(r);
	if (caplen > RP_ARENA)  /* libpcap caps records at 256 KiB; be safe anyway */
		caplen = RP_ARENA;
	rec = &r->rec[r->nrec++];
	rec->ts_ns = rp_ts_ns(r, h);
	rec->num = (uint32_t)++r->st.records;
	rec->off = r->arena_used;
	rec->caplen = caplen;
	rec->wirelen = h->len;   /* as recorded, 0 included: written back unchanged */
	rec->pkt = -1;
	memcpy(r->arena + r->arena_used, bytes, caplen);
	r->arena_used += caplen;
	r->st.bytes_in += caplen;
	if (ld_link_decap(r->dlt, bytes, caplen, &l3))
		rp_add_ip(r, rec, &l3);
	else
		r->st.nonip++;
	if (r->batch.n == r->batch_max)
		rp_flush(r);
}

static void rp_progress(struct rp *r, int last)
{
	uint64_t now = rp_clock_ns(), el;
	double frac = -1, rate, eta = 0;
	char bar[RP_BAR + 1];
	off_t pos;
	int fill;

	if (!r->progress || (!last && now - r->t_shown < RP_PROGRESS_NS))
		return;
	r->t_shown = now;
	el = now - r->t_start;
	pos = r->in_size > 0 ? ftello(pcap_file(r->in)) : -1;
	if (last)
		frac = 1;
	else if (pos >= 0)
		frac = (double)pos / (double)r->in_size;
	rate = el ? (double)r->st.records * 1e9 / (double)el : 0;
	if (frac > 0)
		eta = (double)el / 1e9 * (1 - frac) / frac;
	fill = frac > 0 ? (int)(frac * RP_BAR) : 0;
	for (int i = 0; i < RP_BAR; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[RP_BAR] = 0;
	if (frac >= 0)
		fprintf(stderr, "\r[%s] %3d%% %" PRIu64 " packets %.0f/s %.0fs left ", bar,
			(int)(frac * 100), r->st.records, rate, eta);
	else
		fprintf(stderr, "\r%" PRIu64 " packets %.0f/s ", r->st.records, rate);
	if (last)
		fputc('\n', stderr);
}

/* Read every record; on a read error stop, keeping what came before it. */
static void rp_loop(struct rp *r)
{
	struct pcap_pkthdr *h;
	const u_char *bytes;
	int rc;

	while (!r->failed) {
		rc = pcap_next_ex(r->in, &h, &bytes);
		if (rc == 1) {
			rp_add(r, h, bytes);
			if (r->nrec == 0)
				rp_progress(r, 0);
			continue;
		}
		if (rc != PCAP_ERROR_BREAK)
			snprintf(r->read_err, sizeof(r->read_err), "record %" PRIu64 ": %s",
				 r->st.records + 1, rc == PCAP_ERROR ? pcap_geterr(r->in) :
				 "unexpected end of the capture");
		break;
	}
	rp_flush(r);
	/* what is held goes out even after an error (pointless only on a full disk) */
	rp_release_until(r, UINT64_MAX, UINT32_MAX);
}

static void rp_summary(const struct rp *r, uint64_t el)
{
	const struct rp_stats *s = &r->st;

	fprintf(stderr, "replay: %" PRIu64 " records (%" PRIu64 " IP, %" PRIu64 " not IP) in %.3f s,"
		" %.0f records/s\n", s->records, s->ip, s->nonip, (double)el / 1e9,
		el ? (double)s->records * 1e9 / (double)el : 0.0);
	fprintf(stderr, "verdicts: pass %" PRIu64 ", drop %" PRIu64 ", queue %" PRIu64 ", repeat %"
		PRIu64 "; modified %" PRIu64 ", marked %" PRIu64 ", held %" PRIu64 ", duplicates %"
		PRIu64 ", errors %" PRIu64 "\n", s->pass, s->drop, s->queue, s->repeat, s->modified,
		s->marked, s->held, s->dups, s->errors);
	fprintf(stderr, "output: %" PRIu64 " records, %" PRIu64 " bytes (input %" PRIu64 " bytes)\n",
		s->written, s->bytes_out, s->bytes_in);
	if (s->injected)
		fprintf(stderr, "injected: %" PRIu64 " new packets from divert.inject()\n", s->injected);
	if (s->truncated || s->overflow || s->refused || s->other)
		fprintf(stderr, "notes: %" PRIu64 " snap-truncated, %" PRIu64 " dropped (hold table "
			"full), %" PRIu64 " changes not used (truncated packet or bad length), %" PRIu64
			" unknown verdicts (passed)\n", s->truncated, s->overflow, s->refused, s->other);
}

/* Flush and close the outputs; 0 when everything reached the files. */
static int rp_close(struct rp *r)
{
	int bad = 0;

	if (r->out.f && ld_pcap_out_close(&r->out) < 0) {
		fprintf(stderr, "luadivert replay: %s: write error: %s\n", r->out_path,
			strerror(errno));
		bad = 1;
	}
	if (r->vf) {
		/* a write error that a later flush hid still shows in ferror() */
		int verr = ferror(r->vf) != 0;

		if ((r->vf == stdout ? fflush(r->vf) : fclose(r->vf)) || verr) {
			fprintf(stderr, "luadivert replay: %s: write error: %s\n", r->verdicts_path,
				strerror(errno));
			bad = 1;
		}
		r->vf = NULL;
	}
	return bad;
}

static void rp_free(struct rp *r)
{
	ld_lua_free(r->lua);
	ld_obs_free(r->obs, r->last_ts, "luadivert replay (stopped)");
	ld_pcap_out_close(&r->out);
	if (r->vf && r->vf != stdout && fclose(r->vf))
		fprintf(stderr, "luadivert replay: %s: %s\n", r->verdicts_path, strerror(errno));
	if (r->in)
		pcap_close(r->in);
	ld_heap_free(&r->heap);
	ld_rstore_free(&r->store);
	free(r->pbuf);
	free(r->arena);
	free(r);
}

/**
 * ld_cmd_replay() - `luadivert replay POLICY IN.pcap -w OUT.pcap [options]`
 * @argc: argument count
 * @argv: arguments, argv[0] = "replay"
 *
 * Runs POLICY over every packet of a pcap/pcapng capture with the live
 * batch dispatch, on the capture's clock, and writes the outcome to a pcap
 * file in release order. A read error stops the replay at that record:
 * everything before it is handled, held packets are released, the output is
 * written, and the error names the record.
 *
 * Return: 0 when the whole capture was replayed, 1 on a read, write or
 * policy error, 2 on bad usage.
 */
int ld_cmd_replay(int argc, char **argv)
{
	struct ld_lua_cfg cfg;
	struct rp *r = calloc(1, sizeof(*r));
	char err[1024];
	int rc, status = 1;

	if (!r) {
		fprintf(stderr, "luadivert replay: out of memory\n");
		return 1;
	}
	rc = rp_parse(r, argc, argv);
	if (rc) {
		free(r);
		return rc < 0 ? 0 : rc;
	}
	if (r->seed && setenv("LUADIVERT_SEED", r->seed, 1)) {
		fprintf(stderr, "luadivert replay: setenv: %s\n", strerror(errno));
		free(r);
		return 1;
	}
	if (rp_open_input(r) || rp_alloc(r))
		goto out;
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = r->policy;
	cfg.lua_dir = r->lua_dir;
	r->sink = (struct ld_inject_sink){ .send = rp_inject, .ctx = r };
	cfg.sink = &r->sink;
	cfg.log_limit = &r->lim;
	err[0] = 0;
	r->lua = ld_lua_new(&cfg, &r->batch, err, sizeof(err));
	if (!r->lua) {
		fprintf(stderr, "luadivert replay: %s\n", err[0] ? err : "cannot load the policy");
		goto out;
	}
	if (rp_open_output(r))
		goto out;
	r->progress = !r->quiet && isatty(STDERR_FILENO);
	r->t_start = r->t_shown = rp_clock_ns();
	rp_loop(r);
	rp_progress(r, 1);
	if (rp_close(r))
		r->failed = 1;
	/* the policy's on_stop runs here, before the summary */
	if (ld_lua_stop(r->lua) < 0)
		r->failed = 1;
	ld_lua_free(r->lua);
	r->lua = NULL;
	rp_obs_counters(r);
	{
		char title[PATH_MAX + 64];

		snprintf(title, sizeof(title), "luadivert replay %s %s", r->policy, r->in_path);
		if (ld_obs_free(r->obs, r->last_ts, title) < 0)
			r->failed = 1;
		r->obs = NULL;
	}
	ld_log_limit_flush(&r->lim);
	if (!r->quiet)
		rp_summary(r, rp_clock_ns() - r->t_start);
	if (r->read_err[0])
		fprintf(stderr, "luadivert replay: %s: %s (the records before it were replayed "
			"and written)\n", r->in_path, r->read_err);
	status = r->read_err[0] || r->failed || r->ts_overflow;
out:
	rp_free(r);
	return status;
}

// SPDX-License-Identifier: MIT
/* replay_cli.c - the command line of `luadivert replay` (replay_priv.h). */
#include "replay_priv.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "observe_cli.h"
#include "record_pcapng.h"

void rp_usage(FILE *f)
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

/* An unsigned decimal in [lo, hi] (cli.h's parser); 0, or -1 after the message. */
static int rp_number(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (ld_parse_u64(s, 10, lo, hi, out) < 0) {
		fprintf(stderr, "luadivert replay: %s: expected a number from %" PRIu64
			" to %" PRIu64 ", got '%s'\n", opt, lo, hi, s);
		return -1;
	}
	return 0;
}

/* Fill @r from the command line. Return 0, 2 on bad usage, -1 after --help. */
int rp_parse(struct rp *r, int argc, char **argv)
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
	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
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

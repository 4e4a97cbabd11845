// SPDX-License-Identifier: MIT
/* run.c - `luadivert run` (live traffic from a queue) and `luadivert check`. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "log.h"
#include "lua_host.h"
#include "rules.h"
#include "supervisor.h"
#include "hold_takeover.h"
#include "worker.h"

static const char run_usage[] =
	"usage: luadivert run POLICY [options]\n"
	"\n"
	"Run the Lua policy POLICY on the packets of an NFQUEUE queue.\n"
	"luadivert installs the firewall rules that send packets to the queue\n"
	"(chain LUADIVERT-Q<N>, mangle table) and removes them when it exits.\n"
	"\n"
	"options:\n"
	"  -q, --queue N              queue number (0..65535, default 0)\n"
	"  -f, --filter EXPR          divert only packets matching this tcpdump filter\n"
	"                             (default: every packet at the hooks)\n"
	"      --hook H               prerouting|input|forward|output|postrouting|all, repeat\n"
	"                             or comma-separate (default input,output)\n"
	"      --family 4|6           only IPv4 or only IPv6 (default both)\n"
	"      --fail-closed          drop diverted packets while no luadivert listens\n"
	"                             (default: they pass, --queue-bypass)\n"
	"      --backend B            auto|nft|legacy: which iptables (default auto)\n"
	"      --no-rules             install no rules; send packets to the queue yourself\n"
	"      --queue-maxlen N       kernel queue length (default 4096; raised to fit --hold-max)\n"
	"      --fail-open            the kernel accepts packets when the queue is full\n"
	"      --default-verdict V    pass|drop: verdict when the handler fails (default pass)\n"
	"      --hold-max N           packets held at once for shaping (default 4096)\n"
	"      --hold-copies N        held packets with changed bytes (default 256)\n"
	"      --hold-bytes N[K|M|G]  memory for copies of held packets this host sent\n"
	"                             (output/postrouting; default 64M, 0: keep them queued)\n"
	"      --held-on-exit V       release|drop held packets at exit (default release)\n"
	"      --pidfile FILE         pid file (default /run/luadivert/queue-N.pid)\n"
	"      --watch                reload when the policy file changes\n"
	"      --lua-dir DIR          where the divert Lua modules are\n"
	"      --handler-timeout MS   a batch in the policy longer than this is a hang: the\n"
	"                             worker is killed and replaced (default 500)\n"
	"      --init-timeout MS      deadline for loading the policy and its init (default 5000)\n"
	"      --reload-timeout MS    deadline for a reload: load, init, save, on_reload (5000)\n"
	"      --stop-timeout MS      after SIGTERM/SIGINT, the policy's time to finish; then what\n"
	"                             it holds gets the default verdict (default 3000)\n"
	"      --max-restarts N       restarts after hangs/crashes within --restart-window\n"
	"                             before the policy is given up on (default 5)\n"
	"      --restart-window S     seconds (default 60)\n"
	"  -h, --help                 this text\n"
	"\n"
	"The policy runs in a worker process; a hang, a crash or os.exit costs the\n"
	"packets in hand their policy verdict (they get the default one), never the\n"
	"queue. Signals: SIGHUP reloads the policy, SIGUSR1 prints the counters,\n"
	"SIGINT/SIGTERM stop after giving every packet a verdict.\n"
	"Exit status: 0 stopped cleanly, 1 could not start, 2 bad usage, 3 the policy\n"
	"was given up on (and still was at the stop), 4 the policy missed --stop-timeout.\n";

static const char check_usage[] =
	"usage: luadivert check POLICY [--lua-dir DIR]\n"
	"\n"
	"Load POLICY, run its init, and report errors with file:line. Needs no root\n"
	"and touches no queue. Exit status 0 when the policy is usable, 1 otherwise.\n";

enum {
	OPT_MAXLEN = 256, OPT_FAIL_OPEN, OPT_DEFAULT, OPT_HOLD_MAX, OPT_HOLD_COPIES, OPT_HOLD_BYTES,
	OPT_HELD_EXIT, OPT_PIDFILE, OPT_WATCH, OPT_LUA_DIR,
	OPT_HOOK, OPT_FAMILY, OPT_FAIL_CLOSED, OPT_BACKEND, OPT_NO_RULES,
	OPT_HANDLER_TIMEOUT, OPT_INIT_TIMEOUT, OPT_RELOAD_TIMEOUT, OPT_STOP_TIMEOUT,
	OPT_MAX_RESTARTS, OPT_RESTART_WINDOW,
};

static const struct option run_opts[] = {
	{ "queue", required_argument, NULL, 'q' },
	{ "queue-maxlen", required_argument, NULL, OPT_MAXLEN },
	{ "fail-open", no_argument, NULL, OPT_FAIL_OPEN },
	{ "default-verdict", required_argument, NULL, OPT_DEFAULT },
	{ "hold-max", required_argument, NULL, OPT_HOLD_MAX },
	{ "hold-copies", required_argument, NULL, OPT_HOLD_COPIES },
	{ "hold-bytes", required_argument, NULL, OPT_HOLD_BYTES },
	{ "held-on-exit", required_argument, NULL, OPT_HELD_EXIT },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "lua-dir", required_argument, NULL, OPT_LUA_DIR },
	{ "filter", required_argument, NULL, 'f' },
	{ "hook", required_argument, NULL, OPT_HOOK },
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "fail-closed", no_argument, NULL, OPT_FAIL_CLOSED },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "no-rules", no_argument, NULL, OPT_NO_RULES },
	{ "handler-timeout", required_argument, NULL, OPT_HANDLER_TIMEOUT },
	{ "init-timeout", required_argument, NULL, OPT_INIT_TIMEOUT },
	{ "reload-timeout", required_argument, NULL, OPT_RELOAD_TIMEOUT },
	{ "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
	{ "max-restarts", required_argument, NULL, OPT_MAX_RESTARTS },
	{ "restart-window", required_argument, NULL, OPT_RESTART_WINDOW },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_verdict(const char *s, uint32_t *v)
{
	if (strcmp(s, "pass") == 0 || strcmp(s, "accept") == 0)
		*v = LD_PASS;
	else if (strcmp(s, "drop") == 0)
		*v = LD_DROP;
	else
		return -1;
	return 0;
}

/* A size: a whole number of bytes, or of KiB/MiB/GiB with a K/M/G suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;
	uint32_t v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	default: break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (ld_parse_u32(num, 0, shift ? 1u << (42 - shift) : UINT32_MAX, &v) < 0)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A duration option in milliseconds: 1 ms .. 1 hour. */
static int parse_ms(const char *opt, const char *arg, uint32_t *out)
{
	if (ld_parse_u32(arg, 1, 3600000, out) < 0) {
		ld_usage_error("run", "--%s: '%s' is not 1..3600000 (milliseconds)", opt, arg);
		return -1;
	}
	return 0;
}

int ld_cmd_run(int argc, char **argv)
{
	struct ld_super_cfg sup = {
		.w = {
			.nfq = { .queue = 0, .maxlen = LD_QUEUE_MAXLEN_DEFAULT,
				 .default_verdict = LD_PASS },
			.hold_max = LD_HOLD_MAX_DEFAULT,
			.hold_copies = LD_HOLD_COPIES_DEFAULT,
			.hold_bytes = LD_HOLD_BYTES_DEFAULT,
			.held_on_exit = LD_HELD_RELEASE,
		},
		.handler_timeout_ms = LD_HANDLER_TIMEOUT_MS_DEFAULT,
		.init_timeout_ms = LD_INIT_TIMEOUT_MS_DEFAULT,
		.reload_timeout_ms = LD_RELOAD_TIMEOUT_MS_DEFAULT,
		.stop_timeout_ms = LD_STOP_TIMEOUT_MS_DEFAULT,
		.max_restarts = LD_MAX_RESTARTS_DEFAULT,
		.restart_window_s = LD_RESTART_WINDOW_S_DEFAULT,
	};
	struct ld_worker_cfg cfg = sup.w;
	char pidfile[PATH_MAX] = "", err[1024];
	struct ld_rules_cfg rules;
	unsigned hooks = 0;
	uint32_t v;
	int opt, no_rules = 0;

	ld_rules_cfg_init(&rules, 0);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "q:f:h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			if (ld_parse_u32(optarg, 0, 65535, &v) < 0)
				return ld_usage_error("run", "--queue: '%s' is not 0..65535", optarg);
			cfg.nfq.queue = (uint16_t)v;
			break;
		case OPT_MAXLEN:
			if (ld_parse_u32(optarg, 1, 1u << 24, &cfg.nfq.maxlen) < 0)
				return ld_usage_error("run", "--queue-maxlen: '%s' is not 1..16777216",
						      optarg);
			break;
		case OPT_FAIL_OPEN:
			cfg.nfq.fail_open = 1;
			break;
		case OPT_DEFAULT:
			if (parse_verdict(optarg, &cfg.nfq.default_verdict) < 0)
				return ld_usage_error("run", "--default-verdict: '%s' is not pass or drop",
						      optarg);
			break;
		case OPT_HOLD_MAX:
			if (ld_parse_u32(optarg, 0, 1u << 22, &cfg.hold_max) < 0)
				return ld_usage_error("run", "--hold-max: '%s' is not 0..4194304", optarg);
			break;
		case OPT_HOLD_COPIES:
			if (ld_parse_u32(optarg, 0, 65536, &cfg.hold_copies) < 0)
				return ld_usage_error("run", "--hold-copies: '%s' is not 0..65536", optarg);
			break;
		case OPT_HOLD_BYTES:
			if (parse_size(optarg, &cfg.hold_bytes) < 0)
				return ld_usage_error("run", "--hold-bytes: '%s' is not a size up to 4096G",
						      optarg);
			break;
		case OPT_HELD_EXIT:
			if (strcmp(optarg, "release") == 0)
				cfg.held_on_exit = LD_HELD_RELEASE;
			else if (strcmp(optarg, "drop") == 0)
				cfg.held_on_exit = LD_HELD_DROP;
			else
				return ld_usage_error("run", "--held-on-exit: '%s' is not release or drop",
						      optarg);
			break;
		case OPT_PIDFILE:
			snprintf(pidfile, sizeof(pidfile), "%s", optarg);
			break;
		case OPT_WATCH:
			cfg.watch = 1;
			break;
		case OPT_LUA_DIR:
			cfg.lua_dir = optarg;
			break;
		case 'f':
			rules.filter = optarg;
			break;
		case OPT_HOOK:
			if (ld_rules_parse_hook(optarg, &hooks) < 0)
				return ld_usage_error("run", "--hook: '%s' is not prerouting, input, "
						      "forward, output, postrouting or all", optarg);
			break;
		case OPT_FAMILY:
			if (strcmp(optarg, "4") != 0 && strcmp(optarg, "6") != 0)
				return ld_usage_error("run", "--family: '%s' is not 4 or 6", optarg);
			rules.family = optarg[0] - '0';
			break;
		case OPT_FAIL_CLOSED:
			rules.fail_closed = 1;
			break;
		case OPT_BACKEND:
			if (ld_rules_parse_backend(optarg, &rules.backend) < 0)
				return ld_usage_error("run", "--backend: '%s' is not auto, nft or legacy",
						      optarg);
			break;
		case OPT_NO_RULES:
			no_rules = 1;
			break;
		case OPT_HANDLER_TIMEOUT:
			if (parse_ms("handler-timeout", optarg, &sup.handler_timeout_ms) < 0)
				return LD_EXIT_USAGE;
			break;
		case OPT_INIT_TIMEOUT:
			if (parse_ms("init-timeout", optarg, &sup.init_timeout_ms) < 0)
				return LD_EXIT_USAGE;
			break;
		case OPT_RELOAD_TIMEOUT:
			if (parse_ms("reload-timeout", optarg, &sup.reload_timeout_ms) < 0)
				return LD_EXIT_USAGE;
			break;
		case OPT_STOP_TIMEOUT:
			if (parse_ms("stop-timeout", optarg, &sup.stop_timeout_ms) < 0)
				return LD_EXIT_USAGE;
			break;
		case OPT_MAX_RESTARTS:
			if (ld_parse_u32(optarg, 0, LD_MAX_RESTARTS_MAX, &sup.max_restarts) < 0)
				return ld_usage_error("run", "--max-restarts: '%s' is not 0..%d", optarg,
						      LD_MAX_RESTARTS_MAX);
			break;
		case OPT_RESTART_WINDOW:
			if (ld_parse_u32(optarg, 1, 86400, &sup.restart_window_s) < 0)
				return ld_usage_error("run", "--restart-window: '%s' is not 1..86400 "
						      "(seconds)", optarg);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return LD_EXIT_OK;
		default:
			return ld_usage_error("run", "unknown or incomplete option");
		}
	}
	if (optind != argc - 1)
		return ld_usage_error("run", optind == argc ? "missing POLICY" : "more than one POLICY");
	cfg.policy = argv[optind];
	if (!pidfile[0])
		ld_default_pidfile(cfg.nfq.queue, pidfile, sizeof(pidfile));
	rules.queue = cfg.nfq.queue;
	if (hooks)
		rules.hooks = hooks;
	if (no_rules && (rules.filter || hooks || rules.family || rules.fail_closed))
		return ld_usage_error("run", "--no-rules installs nothing: --filter, --hook, "
				      "--family and --fail-closed do not apply");
	/* a bad filter exits 2 before anything is loaded, bound or installed */
	if (!no_rules && ld_rules_compile(&rules, NULL, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		return LD_EXIT_USAGE;
	}

	sup.w = cfg;
	sup.rules = no_rules ? NULL : &rules;
	sup.pidfile = pidfile;
	return ld_supervise(&sup);
}

int ld_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lua-dir", required_argument, NULL, OPT_LUA_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_packet pkts[LD_BATCH_MAX];
	struct ld_batch batch = { .pkts = pkts, .default_verdict = LD_PASS };
	struct ld_lua_cfg cfg = { 0 };
	struct ld_lua *L;
	char err[1024];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LUA_DIR:
			cfg.lua_dir = optarg;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return LD_EXIT_OK;
		default:
			return ld_usage_error("check", "unknown or incomplete option");
		}
	}
	if (optind != argc - 1)
		return ld_usage_error("check", optind == argc ? "missing POLICY" : "more than one POLICY");
	cfg.policy = argv[optind];
	L = ld_lua_new(&cfg, &batch, err, sizeof(err));
	if (!L) {
		ld_log("%s", err);
		return LD_EXIT_FAIL;
	}
	ld_lua_free(L);
	printf("%s: ok\n", cfg.policy);
	return LD_EXIT_OK;
}

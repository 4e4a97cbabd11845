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
#include "policy_rules.h"
#include "observe_cli.h"
#include "record_pcapng.h"
#include "pidfile.h"
#include "rules.h"
#include "supervisor.h"
#include "sandbox.h"
#include "hold_takeover.h"
#include "worker.h"
#include "offload.h"
#include "busy_poll.h"
#include "timer_lead.h"
#include "workers_cli.h"

static const char run_usage[] =
	"usage: luadivert run POLICY [options]\n"
	"\n"
	"Run the Lua policy POLICY on the packets of an NFQUEUE queue.\n"
	"luadivert installs the firewall rules that send packets to the queue\n"
	"(chain LUADIVERT-Q<N>, mangle table) and removes them when it exits.\n"
	"\n"
	"options:\n"
	"  -q, --queue N              queue number (0..65535, default 0)\n"
	"  -w, --workers N|auto       N worker processes, one per queue Q..Q+N-1 (Q: --queue),\n"
	"                             each pinned to a CPU; the rules spread flows over the\n"
	"                             queues (--queue-balance); auto: one per CPU (default 1)\n"
	"      --cpu-fanout           with --workers: the CPU that handles a packet picks\n"
	"                             its queue (--queue-cpu-fanout), not the flow hash\n"
	"  -f, --filter EXPR          divert only packets matching this tcpdump filter\n"
	"                             (default: every packet at the hooks; a policy table's\n"
	"                             filter, hook and family fields win over these three)\n"
	"      --hook H               prerouting|input|forward|output|postrouting|all, repeat\n"
	"                             or comma-separate (default input,output)\n"
	"      --family 4|6           only IPv4 or only IPv6 (default both)\n"
	"      --fail-closed          drop diverted packets while no luadivert listens\n"
	"                             (default: they pass, --queue-bypass)\n"
	"      --backend B            auto|nft|legacy: which iptables (default auto)\n"
	"      --no-rules             install no rules; send packets to the queue yourself\n"
	"                             (`luadivert rules print` shows what run would install)\n"
	"      --no-offload           no offload rules: divert.OFFLOAD passes the packet only\n"
	"      --busy-poll USEC       after a packet, poll the queue for up to USEC (0..1000000)\n"
	"                             before sleeping: lower latency, one CPU spins (default 0)\n"
	"      --timer-lead auto|USEC wake this long before a held packet is due and poll,\n"
	"                             not sleep, until it is: on-time releases, some CPU\n"
	"                             (default auto: the timer's 90th-percentile lateness,\n"
	"                             at most 200 us; 0: off; USEC: 0..1000)\n"
	"      --queue-maxlen N       kernel queue length (default 4096; raised to fit --hold-max)\n"
	"      --fail-open            the kernel accepts packets when the queue is full\n"
	"      --default-verdict V    pass|drop: verdict when the handler fails (default pass)\n"
	"      --hold-max N           packets held at once for shaping (default 4096)\n"
	"      --hold-copies N        held packets with changed bytes (default 256)\n"
	"      --hold-bytes N[K|M|G]  memory for copies of held packets this host sent\n"
	"                             (output/postrouting; default 64M, 0: keep them queued)\n"
	"      --held-on-exit V       release|drop held packets at exit (default release)\n"
	"      --pidfile FILE         pid file (default /run/luadivert/net<netns inode>-queue-N.pid)\n"
	"      --watch                reload when the policy file changes\n"
	"      --lua-dir DIR          where the divert Lua modules are\n"
	"      --metrics ADDR         serve Prometheus metrics on GET /metrics at ADDR:\n"
	"                             127.0.0.1:9464, [::1]:9464 or unix:/run/luadivert/m.sock\n"
	"      --record FILE.pcapng   write every diverted packet once, as the policy left\n"
	"                             it, with its verdict, hold time and 'modified' as comment\n"
	"      --record-max SIZE      rotate the record at SIZE bytes (k, M, G): FILE, FILE.1, ...\n"
	"      --report FILE.html     at exit, write a page with throughput, verdicts, loss\n"
	"                             and added delay over the run (docs/metrics.md)\n"
	"      --handler-timeout MS   a batch in the policy longer than this is a hang: the\n"
	"                             worker is killed and replaced (default 500)\n"
	"      --init-timeout MS      deadline for loading the policy and its init (default 5000)\n"
	"      --reload-timeout MS    deadline for a reload: load, init, save, on_reload (5000)\n"
	"      --stop-timeout MS      after SIGTERM/SIGINT, the policy's time to finish; then what\n"
	"                             it holds gets the default verdict (default 3000)\n"
	"      --max-restarts N       restarts after hangs/crashes within --restart-window\n"
	"                             before the policy is given up on (default 5)\n"
	"      --restart-window S     seconds (default 60)\n"
	"      --user NAME            run the policy as NAME (default luadivert if it\n"
	"                             exists, else nobody), with only CAP_NET_ADMIN and\n"
	"                             CAP_NET_RAW, NoNewPrivs and a seccomp allow-list\n"
	"      --memory-max SIZE      cap on the policy's Lua memory, e.g. 64M (default 256M,\n"
	"                             0 = none); past it, handlers fail: default verdict\n"
	"      --allow-insecure-policy  load a policy or modules that others can write\n"
	"      --no-sandbox           run the policy as root with every capability (debugging)\n"
	"  -h, --help                 this text\n"
	"\n"
	"The policy runs in a sandboxed worker process; a hang or a crash costs the\n"
	"packets in hand their policy verdict (they get the default one), never the\n"
	"queue. Signals: SIGHUP reloads the policy (and the rules it declares), SIGUSR1\n"
	"prints the counters, SIGINT/SIGTERM stop after giving every packet a verdict.\n"
	"Exit status: 0 stopped cleanly, 1 could not start, 2 bad usage, 3 the policy\n"
	"was given up on (and still was at the stop), 4 the policy missed --stop-timeout.\n";

static const char check_usage[] =
	"usage: luadivert check POLICY [--lua-dir DIR] [--memory-max SIZE]\n"
	"                              [--allow-insecure-policy]\n"
	"\n"
	"Load POLICY, run its init, compile the filter it declares, and report errors\n"
	"with file:line. Needs no root and touches no queue. Exit status 0 when the\n"
	"policy is usable, 1 otherwise.\n";

enum {
	OPT_MAXLEN = 256, OPT_FAIL_OPEN, OPT_DEFAULT, OPT_HOLD_MAX, OPT_HOLD_COPIES, OPT_HOLD_BYTES,
	OPT_HELD_EXIT, OPT_PIDFILE, OPT_WATCH, OPT_LUA_DIR,
	OPT_HOOK, OPT_FAMILY, OPT_FAIL_CLOSED, OPT_BACKEND, OPT_NO_RULES,
	OPT_METRICS, OPT_RECORD, OPT_RECORD_MAX, OPT_REPORT,
	OPT_HANDLER_TIMEOUT, OPT_INIT_TIMEOUT, OPT_RELOAD_TIMEOUT, OPT_STOP_TIMEOUT,
	OPT_MAX_RESTARTS, OPT_RESTART_WINDOW,
	OPT_USER, OPT_MEMORY_MAX, OPT_INSECURE, OPT_NO_SANDBOX, OPT_NO_OFFLOAD, OPT_BUSY_POLL,
	OPT_TIMER_LEAD,
	OPT_CPU_FANOUT,
};

static const struct option run_opts[] = {
	{ "queue", required_argument, NULL, 'q' },
	{ "workers", required_argument, NULL, 'w' },
	{ "cpu-fanout", no_argument, NULL, OPT_CPU_FANOUT },
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
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "record", required_argument, NULL, OPT_RECORD },
	{ "record-max", required_argument, NULL, OPT_RECORD_MAX },
	{ "report", required_argument, NULL, OPT_REPORT },
	{ "handler-timeout", required_argument, NULL, OPT_HANDLER_TIMEOUT },
	{ "init-timeout", required_argument, NULL, OPT_INIT_TIMEOUT },
	{ "reload-timeout", required_argument, NULL, OPT_RELOAD_TIMEOUT },
	{ "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
	{ "max-restarts", required_argument, NULL, OPT_MAX_RESTARTS },
	{ "restart-window", required_argument, NULL, OPT_RESTART_WINDOW },
	{ "user", required_argument, NULL, OPT_USER },
	{ "memory-max", required_argument, NULL, OPT_MEMORY_MAX },
	{ "allow-insecure-policy", no_argument, NULL, OPT_INSECURE },
	{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
	{ "no-offload", no_argument, NULL, OPT_NO_OFFLOAD },
	{ "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
	{ "timer-lead", required_argument, NULL, OPT_TIMER_LEAD },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* --memory-max and --allow-insecure-policy, shared by run and check: 1 handled,
 * 0 not ours, -1 bad value. */
static int parse_limit_opt(int opt, const char *arg, size_t *memory_max, int *insecure)
{
	uint64_t v;

	if (opt == OPT_INSECURE) {
		*insecure = 1;
		return 1;
	}
	if (opt != OPT_MEMORY_MAX)
		return 0;
	if (ld_parse_size(arg, 0, &v) < 0 || (v && v < (1ull << 20)) || v > SIZE_MAX)
		return -1;
	*memory_max = (size_t)v;
	return 1;
}

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
			.memory_max = LD_LUA_MEMORY_MAX_DEFAULT,
			.timer_lead_us = LD_TIMER_LEAD_AUTO,
		},
		.handler_timeout_ms = LD_HANDLER_TIMEOUT_MS_DEFAULT,
		.init_timeout_ms = LD_INIT_TIMEOUT_MS_DEFAULT,
		.reload_timeout_ms = LD_RELOAD_TIMEOUT_MS_DEFAULT,
		.stop_timeout_ms = LD_STOP_TIMEOUT_MS_DEFAULT,
		.max_restarts = LD_MAX_RESTARTS_DEFAULT,
		.restart_window_s = LD_RESTART_WINDOW_S_DEFAULT,
	};
	struct ld_worker_cfg cfg = sup.w;
	char pidfile[PATH_MAX] = "", err[1024], wuser[64] = "";
	struct ld_rules_cfg rules;
	unsigned hooks = 0, given = 0;
	uint32_t v;
	int opt, no_rules = 0;

	ld_rules_cfg_init(&rules, 0);
	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
	opterr = 0;   /* one message, ours */
	while ((opt = getopt_long(argc, argv, "q:w:f:h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			if (ld_parse_u32(optarg, 0, 65535, &v) < 0)
				return ld_usage_error("run", "--queue: '%s' is not 0..65535", optarg);
			cfg.nfq.queue = (uint16_t)v;
			break;
		case 'w':
			if (ld_parse_workers(optarg, &sup.workers) < 0)
				return ld_usage_error("run", "--workers: '%s' is not 1..%d or auto",
						      optarg, LD_WORKERS_MAX);
			break;
		case OPT_CPU_FANOUT:
			rules.cpu_fanout = 1;
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
			if (ld_parse_size(optarg, 0, &cfg.hold_bytes) < 0)
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
			given |= LD_DECL_FILTER;
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
			given |= LD_DECL_FAMILY;
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
		case OPT_METRICS:   /* issue 13 */
			cfg.obs.metrics_addr = optarg;
			break;
		case OPT_RECORD:
			cfg.obs.record_path = optarg;
			break;
		case OPT_RECORD_MAX:
			if (ld_parse_size(optarg, LD_RECORD_MIN_SIZE, &cfg.obs.record_max) < 0)
				return ld_usage_error("run", "--record-max: '%s' is not a size of at least "
						      "64k (bytes, or k, M, G)", optarg);
			break;
		case OPT_REPORT:
			cfg.obs.report_path = optarg;
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
		case OPT_USER:
			cfg.sandbox.user = optarg;
			break;
		case OPT_NO_SANDBOX:
			cfg.sandbox.disabled = 1;
			break;
		case OPT_NO_OFFLOAD:   /* issue 16 */
			cfg.no_offload = 1;
			break;
		case OPT_BUSY_POLL:
			if (ld_parse_u32(optarg, 0, LD_BUSY_POLL_MAX_US, &cfg.busy_poll_us) < 0)
				return ld_usage_error("run", "--busy-poll: '%s' is not 0..%d "
						      "(microseconds)", optarg, LD_BUSY_POLL_MAX_US);
			break;
		case OPT_TIMER_LEAD:
			if (strcmp(optarg, "auto") == 0)
				cfg.timer_lead_us = LD_TIMER_LEAD_AUTO;
			else if (ld_parse_u32(optarg, 0, LD_TIMER_LEAD_MAX_US, &v) == 0)
				cfg.timer_lead_us = (int32_t)v;
			else
				return ld_usage_error("run", "--timer-lead: '%s' is not auto or 0..%d "
						      "(microseconds)", optarg, LD_TIMER_LEAD_MAX_US);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return LD_EXIT_OK;
		default:
			switch (parse_limit_opt(opt, optarg, &cfg.memory_max, &sup.allow_insecure)) {
			case 1:
				break;
			case -1:
				return ld_usage_error("run", "--memory-max: '%s' is not 0 or a size of "
						      "at least 1M (e.g. 64M, 1G)", optarg);
			default:
				return ld_usage_error("run", "unknown option or missing value: '%s'",
						      ld_bad_option(argv));
			}
		}
	}
	if (optind != argc - 1)
		return ld_usage_error("run", optind == argc ? "missing POLICY" : "more than one POLICY");
	cfg.policy = argv[optind];
	if (cfg.obs.record_max && !cfg.obs.record_path)
		return ld_usage_error("run", "--record-max needs --record");
	if (!pidfile[0])
		ld_default_pidfile(cfg.nfq.queue, pidfile, sizeof(pidfile));
	rules.queue = cfg.nfq.queue;
	rules.offload_gen = cfg.no_offload ? 0 : LD_OFFLOAD_GEN_FIRST;
	if (ld_workers_check(&sup, &cfg, &rules, no_rules) < 0)
		return LD_EXIT_USAGE;
	if (hooks) {
		rules.hooks = hooks;
		given |= LD_DECL_HOOK;
	}
	if (no_rules && (rules.filter || hooks || rules.family || rules.fail_closed))
		return ld_usage_error("run", "--no-rules installs nothing: --filter, --hook, "
				      "--family and --fail-closed do not apply");
	/* the worker's user, resolved once: every worker switches to this one */
	if (!cfg.sandbox.disabled) {
		uid_t uid;
		gid_t gid;

		if (ld_sandbox_user(&cfg.sandbox, &uid, &gid, wuser, sizeof(wuser), err,
				    sizeof(err)) < 0)
			return ld_usage_error("run", "%s", err);
		cfg.sandbox.user = wuser;
	}
	/* a bad filter exits 2 before anything is loaded, bound or installed */
	if (!no_rules && ld_rules_compile(&rules, NULL, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		return LD_EXIT_USAGE;
	}

	sup.w = cfg;
	sup.rules = no_rules ? NULL : &rules;
	sup.given = given;
	sup.pidfile = pidfile;
	return ld_supervise(&sup);
}

/* `check` compiles the rules a policy declares as `run` would (bad filter: exit 1). */
static int check_declared(struct ld_lua *L, char *what, size_t whatlen)
{
	struct ld_policy_rules *decl = malloc(sizeof(*decl));
	struct ld_divert d = { .cur = NULL };
	struct ld_rules_set *set = NULL;
	char err[LD_RULES_FILTER_MAX + 1200], desc[LD_RULES_FILTER_MAX + 128];
	int rc = -1;

	what[0] = '\0';
	ld_rules_cfg_init(&d.cmdline, 0);
	if (!decl)
		ld_log("out of memory");
	else if (ld_lua_declared(L, decl, err, sizeof(err)) < 0 ||
		 (decl->declared && ld_divert_plan(&d, decl, &set, err, sizeof(err)) < 0))
		ld_log("%s", err);
	else
		rc = 0;
	if (set)
		snprintf(what, whatlen, " (diverts %s)", ld_rules_set_describe(set, desc, sizeof(desc)));
	free(set);
	free(decl);
	return rc;
}

int ld_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lua-dir", required_argument, NULL, OPT_LUA_DIR },
		{ "memory-max", required_argument, NULL, OPT_MEMORY_MAX },
		{ "allow-insecure-policy", no_argument, NULL, OPT_INSECURE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_packet pkts[LD_BATCH_MAX];
	struct ld_batch batch = { .pkts = pkts, .default_verdict = LD_PASS };
	struct ld_lua_cfg cfg = { .memory_max = LD_LUA_MEMORY_MAX_DEFAULT };
	struct ld_lua *L;
	char err[1024], what[LD_RULES_FILTER_MAX + 160];
	int opt, rc;

	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LUA_DIR:
			cfg.lua_dir = optarg;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return LD_EXIT_OK;
		default:
			switch (parse_limit_opt(opt, optarg, &cfg.memory_max, &cfg.allow_insecure)) {
			case 1:
				break;
			case -1:
				return ld_usage_error("check", "--memory-max: '%s' is not 0 or a size of "
						      "at least 1M (e.g. 64M, 1G)", optarg);
			default:
				return ld_usage_error("check", "unknown option or missing value: '%s'",
						      ld_bad_option(argv));
			}
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
	rc = check_declared(L, what, sizeof(what));
	ld_lua_discard(L);   /* the policy never ran: no on_stop */
	if (rc < 0)
		return LD_EXIT_FAIL;
	printf("%s: ok%s\n", cfg.policy, what);
	return LD_EXIT_OK;
}

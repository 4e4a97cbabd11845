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
#include "rules_foreign.h"
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
	"                             (default: every packet at the hooks; a policy table's\n"
	"                             filter, hook and family fields win over these three)\n"
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
	"  -h, --help                 this text\n"
	"\n"
	"Signals: SIGHUP reloads the policy (and the rules it declares), SIGUSR1 prints\n"
	"the counters, "
	"SIGINT/SIGTERM stop after giving every packet a verdict.\n";

static const char check_usage[] =
	"usage: luadivert check POLICY [--lua-dir DIR]\n"
	"\n"
	"Load POLICY, run its init, compile the filter it declares, and report errors\n"
	"with file:line. Needs no root and touches no queue. Exit status 0 when the\n"
	"policy is usable, 1 otherwise.\n";

enum {
	OPT_MAXLEN = 256, OPT_FAIL_OPEN, OPT_DEFAULT, OPT_HOLD_MAX, OPT_HOLD_COPIES, OPT_HOLD_BYTES,
	OPT_HELD_EXIT, OPT_PIDFILE, OPT_WATCH, OPT_LUA_DIR,
	OPT_HOOK, OPT_FAMILY, OPT_FAIL_CLOSED, OPT_BACKEND, OPT_NO_RULES,
	OPT_METRICS, OPT_RECORD, OPT_RECORD_MAX, OPT_REPORT,
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
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "record", required_argument, NULL, OPT_RECORD },
	{ "record-max", required_argument, NULL, OPT_RECORD_MAX },
	{ "report", required_argument, NULL, OPT_REPORT },
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

/* Signals are read from a signalfd by the event loop, never handled async. */
static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/*
 * Install the rules the policy declares, merged with the command line
 * (policy_rules.h: the policy wins, field by field), and hand them to the
 * worker so that a reload swaps them with the code.
 */
static int start_rules(struct ld_worker *w, struct ld_divert *d, int no_rules,
		       const char *policy)
{
	struct ld_policy_rules *decl = malloc(sizeof(*decl));
	struct ld_rules_set *set;
	char err[LD_RULES_FILTER_MAX + 1200], what[LD_RULES_FILTER_MAX + 128];

	if (!decl) {
		ld_log("out of memory");
		return -1;
	}
	if (ld_worker_declared(w, decl, err, sizeof(err)) < 0 ||
	    (!no_rules && ld_divert_plan(d, decl, &set, err, sizeof(err)) < 0)) {
		ld_log("%s", err);
		free(decl);
		return -1;
	}
	if (no_rules) {
		if (decl->declared)
			ld_log("queue %u: %s declares divert rules; --no-rules: not installing them",
			       d->cmdline.queue, policy);
		free(decl);
		return 0;
	}
	ld_rules_warn_foreign(d->cmdline.queue, d->cmdline.backend);
	if (ld_divert_install(d, set, err, sizeof(err)) < 0) {
		ld_log("installing the divert rules: %s", err);
		free(set);
		free(decl);
		return -1;
	}
	ld_log("queue %u: diverting %s%s", d->cmdline.queue,
	       ld_rules_set_describe(set, what, sizeof(what)),
	       decl->declared ? " (as the policy declares)" : "");
	ld_worker_set_divert(w, d);
	free(decl);
	return 0;
}

int ld_cmd_run(int argc, char **argv)
{
	struct ld_worker_cfg cfg = {
		.nfq = { .queue = 0, .maxlen = LD_QUEUE_MAXLEN_DEFAULT, .default_verdict = LD_PASS },
		.hold_max = LD_HOLD_MAX_DEFAULT,
		.hold_copies = LD_HOLD_COPIES_DEFAULT,
		.hold_bytes = LD_HOLD_BYTES_DEFAULT,
		.held_on_exit = LD_HELD_RELEASE,
		.signal_fd = -1,
	};
	char pidfile[PATH_MAX] = "", status[PATH_MAX + 8], metrics_file[PATH_MAX + 8], err[1024];
	struct ld_worker *w;
	struct ld_rules_cfg rules;
	struct ld_divert divert = { .cur = NULL };
	unsigned hooks = 0, given = 0;
	uint32_t v;
	int opt, policy_failed, rc, no_rules = 0, lock_fd;

	ld_rules_cfg_init(&rules, 0);
	optind = 1;
	opterr = 0;   /* one message, ours */
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
		case 'h':
			fputs(run_usage, stdout);
			return LD_EXIT_OK;
		default:
			return ld_usage_error("run", "unknown option or missing value: '%s'",
					      ld_bad_option(argv));
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
	if (hooks) {
		rules.hooks = hooks;
		given |= LD_DECL_HOOK;
	}
	if (no_rules && (rules.filter || hooks || rules.family || rules.fail_closed))
		return ld_usage_error("run", "--no-rules installs nothing: --filter, --hook, "
				      "--family and --fail-closed do not apply");
	/* a bad filter exits 2 before anything is loaded, bound or installed */
	if (!no_rules && ld_rules_compile(&rules, NULL, err, sizeof(err)) < 0) {
		ld_log("%s", err);
		return LD_EXIT_USAGE;
	}

	cfg.signal_fd = block_signals();
	if (cfg.signal_fd < 0) {
		ld_log("signalfd: %s", strerror(errno));
		return LD_EXIT_FAIL;
	}
	/* one luadivert per queue; on this failure the rules are the other's */
	lock_fd = ld_rules_lock(cfg.nfq.queue, err, sizeof(err));
	if (lock_fd < 0) {
		ld_log("%s", err);
		close(cfg.signal_fd);
		return LD_EXIT_FAIL;
	}
	w = ld_worker_new(&cfg, err, sizeof(err), &policy_failed);
	if (!w) {
		ld_log("%s", err);
		ld_rules_unlock(lock_fd, cfg.nfq.queue);
		close(cfg.signal_fd);
		return LD_EXIT_FAIL;
	}
	/* the queue is bound: with --fail-closed nothing drops for want of a listener */
	divert.cmdline = rules;
	divert.given = given;
	if (start_rules(w, &divert, no_rules, cfg.policy) < 0) {
		ld_worker_free(w);
		ld_rules_unlock(lock_fd, cfg.nfq.queue);
		close(cfg.signal_fd);
		return LD_EXIT_FAIL;
	}
	if (ld_pidfile_write(pidfile, cfg.nfq.queue) < 0)
		ld_log("warning: pid file %s: %s (luadivert reload will not find us)", pidfile,
		       strerror(errno));
	snprintf(status, sizeof(status), "%s.status", pidfile);
	ld_worker_set_status_file(w, status);
	/* issue 13: `luadivert stats --queue N` finds the endpoint next to the pid file */
	snprintf(metrics_file, sizeof(metrics_file), "%s.metrics", pidfile);
	if (cfg.obs.metrics_addr) {
		if (ld_write_text_file(metrics_file, cfg.obs.metrics_addr) < 0)
			ld_log("warning: %s: %s (luadivert stats needs --metrics ADDR)", metrics_file,
			       strerror(errno));
		ld_log("queue %u: metrics on http://%s/metrics", cfg.nfq.queue, cfg.obs.metrics_addr);
	}
	ld_log("queue %u: running %s (pid %ld)", cfg.nfq.queue, cfg.policy, (long)getpid());
	rc = ld_worker_run(w);
	/* rules out while still bound: ld_worker_free verdicts what queued meanwhile */
	if (!no_rules && ld_rules_remove(&rules, err, sizeof(err)) < 0) {
		ld_log("removing the divert rules: %s (`luadivert rules cleanup --queue %u` "
		       "removes them)", err, cfg.nfq.queue);
		rc = -1;
	}
	ld_worker_free(w);
	ld_divert_free(&divert);
	ld_rules_unlock(lock_fd, cfg.nfq.queue);
	unlink(pidfile);
	unlink(status);
	if (cfg.obs.metrics_addr)
		unlink(metrics_file);
	close(cfg.signal_fd);
	return rc == 0 ? LD_EXIT_OK : LD_EXIT_FAIL;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_packet pkts[LD_BATCH_MAX];
	struct ld_batch batch = { .pkts = pkts, .default_verdict = LD_PASS };
	struct ld_lua_cfg cfg = { 0 };
	struct ld_lua *L;
	char err[1024], what[LD_RULES_FILTER_MAX + 160];
	int opt, rc;

	optind = 1;
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
			return ld_usage_error("check", "unknown option or missing value: '%s'",
					      ld_bad_option(argv));
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

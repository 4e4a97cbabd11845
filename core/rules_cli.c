// SPDX-License-Identifier: MIT
/*
 * rules_cli.c - `luadivert rules list|cleanup|print|add|del`: see and remove
 * the divert rules luadivert installed in this network namespace, show what
 * a --filter would install, and install rules that outlive one program
 * (ipfw's `divert N`, for C programs on a divert socket).
 */
#include "cli.h"
#include "commands.h"
#include "rules.h"
#include "offload.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char rules_usage[] =
	"usage: luadivert rules list [--backend auto|nft|legacy]\n"
	"       luadivert rules cleanup [--queue N] [--backend auto|nft|legacy] [--force]\n"
	"       luadivert rules print [--queue N] [--filter EXPR] [--hook H]... [--family 4|6]\n"
	"                             [--fail-closed] [--skip-mark X] [--no-offload]\n"
	"       luadivert rules add --queue N [--filter EXPR] [--hook H]... [--family 4|6]\n"
	"                           [--fail-closed] [--backend auto|nft|legacy]\n"
	"       luadivert rules del --queue N [--backend auto|nft|legacy] [--force]\n"
	"\n"
	"  list     show every LUADIVERT-Q<n> chain, its rules and the jumps to it, for\n"
	"           both iptables backends (nft, legacy) and both families, and whether\n"
	"           a running luadivert holds each queue\n"
	"  cleanup  remove them (all, or one --queue's); rules of a queue that a running\n"
	"           luadivert holds are left alone unless --force\n"
	"  print    show the iptables-restore input `luadivert run` would install for\n"
	"           these options (needs no root, installs nothing); with --no-rules,\n"
	"           install this yourself: it includes the rules divert.OFFLOAD needs\n"
	"           (--no-offload: as `run --no-offload`, without them)\n"
	"  add      install divert rules for queue N that stay until `rules del` or\n"
	"           `rules cleanup` (FreeBSD: ipfw add divert N); a program on a divert\n"
	"           socket bound to port N (libluadivert-divert, divert(4)) gets the packets\n"
	"  del      remove queue N's rules (the same as cleanup --queue N)\n"
	"\n"
	"  --backend auto (default: both backends for list/cleanup)\n"
	"  --hook    prerouting, input, forward, output, postrouting, all (default input,output)\n";

static int usage_error(const char *what)
{
	fprintf(stderr, "luadivert rules: %s\n%s", what, rules_usage);
	return 2;
}

/* A mark or a number: decimal, or 0x hexadecimal (cli.h's one parser). */
static int parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	uint64_t n;

	if (ld_parse_u64(s, 0, 0, max, &n) < 0)
		return -1;
	*v = (unsigned long)n;
	return 0;
}

/* ------------------------------------------------------------------ list */

struct list_ctx {
	int  backend, family;
	char table[64];
	int  any;
	unsigned char seen[65536 / 8];
	unsigned char added[65536 / 8];   /* installed by `rules add` */
};

/* The tag `rules add` puts on its NFQUEUE rule, before the filter text. */
#define RULES_ADD_TAG "luadivert rules add"

/*
 * Under a chain's NFQUEUE rule, the filter it diverts, from the comment
 * luadivert puts on it (rules.h: LD_RULES_COMMENT_PREFIX): the bytecode
 * alone tells a reader nothing. Both backends print the comment as
 * --comment "filter: EXPR" (legacy leaves the quotes off a single word).
 */
static void print_filter(const char *line)
{
	static const char tag[] = "--comment ";
	const char *c = strstr(line, tag);
	size_t n;
	int quoted;

	if (!c)
		return;
	c += sizeof tag - 1;
	quoted = *c == '"';
	c += quoted;
	/* "filter: EXPR", or "TAG; filter: EXPR" for rules that `rules add` made */
	if (strncmp(c, RULES_ADD_TAG "; ", sizeof RULES_ADD_TAG + 1) == 0)
		c += sizeof RULES_ADD_TAG + 1;
	if (strncmp(c, LD_RULES_COMMENT_PREFIX, sizeof LD_RULES_COMMENT_PREFIX - 1) != 0)
		return;
	c += sizeof LD_RULES_COMMENT_PREFIX - 1;
	n = quoted ? strcspn(c, "\"") : strcspn(c, " ");
	printf("      diverts: %.*s\n", (int)n, c);
}

static void list_item(void *ctx, int backend, int family, const char *table, unsigned queue,
		      int item, const char *line)
{
	struct list_ctx *l = ctx;

	if (!l->any || l->backend != backend || l->family != family || strcmp(l->table, table)) {
		printf("%s%s IPv%d, table %s:\n", l->any ? "\n" : "", ld_rules_backend_name(backend),
		       family, table);
		l->backend = backend;
		l->family = family;
		snprintf(l->table, sizeof l->table, "%s", table);
	}
	l->any = 1;
	l->seen[queue >> 3] |= (unsigned char)(1u << (queue & 7));
	if (item == LD_RULES_ITEM_RULE && strstr(line, "--comment \"" RULES_ADD_TAG))
		l->added[queue >> 3] |= (unsigned char)(1u << (queue & 7));
	if (item == LD_RULES_ITEM_CHAIN)
		printf("  -N %.*s\n", (int)strcspn(line + 1, " "), line + 1);
	else
		printf("  %s\n", line);
	if (item == LD_RULES_ITEM_RULE)
		print_filter(line);
}

static int cmd_list(int backend)
{
	struct list_ctx *l = calloc(1, sizeof *l);
	char err[1024];
	unsigned q;
	int n;

	if (!l) {
		fprintf(stderr, "luadivert rules list: out of memory\n");
		return 1;
	}
	n = ld_rules_scan(backend, list_item, l, err, sizeof err);
	if (n < 0) {
		fprintf(stderr, "luadivert rules list: %s\n", err);
		free(l);
		return 1;
	}
	if (n == 0)
		printf("no luadivert rules in this network namespace\n");
	else
		printf("\n");
	for (q = 0; q < 65536; q++) {
		pid_t pid;

		if (!(l->seen[q >> 3] & (1u << (q & 7))))
			continue;
		pid = ld_rules_lock_holder((uint16_t)q);
		if (pid > 0)
			printf("queue %u: in use by luadivert pid %ld\n", q, (long)pid);
		else if (pid < 0)
			printf("queue %u: in use by a running luadivert\n", q);
		else if (l->added[q >> 3] & (1u << (q & 7)))
			printf("queue %u: added with `luadivert rules add`, stays until "
			       "`luadivert rules del --queue %u`\n", q, q);
		else
			printf("queue %u: no luadivert holds it: leftover rules, remove them with "
			       "`luadivert rules cleanup --queue %u`\n", q, q);
	}
	free(l);
	return 0;
}

/* --------------------------------------------------------------- cleanup */

/* One answer per queue, whichever backend and family asks (and one message). */
struct keep_ctx {
	int force;                        /* remove held queues' rules too */
	unsigned char asked[65536 / 8];   /* queues found */
	unsigned char kept[65536 / 8];    /* ... left alone */
};

static int keep_held(void *ctx, unsigned queue)
{
	struct keep_ctx *k = ctx;
	unsigned char bit = (unsigned char)(1u << (queue & 7));
	pid_t pid;

	if (k->asked[queue >> 3] & bit)
		return !!(k->kept[queue >> 3] & bit);
	k->asked[queue >> 3] |= bit;
	pid = ld_rules_lock_holder((uint16_t)queue);
	if (pid == 0 || k->force)
		return 0;
	k->kept[queue >> 3] |= bit;
	if (pid > 0)
		fprintf(stderr, "luadivert rules cleanup: queue %u is in use by luadivert pid %ld: "
			"leaving its rules (stop it, or add --force)\n", queue, (long)pid);
	else
		fprintf(stderr, "luadivert rules cleanup: queue %u is in use by a running "
			"luadivert: leaving its rules (stop it, or add --force)\n", queue);
	return 1;
}

static int cmd_cleanup(int queue, int backend, int force)
{
	struct keep_ctx *k = calloc(1, sizeof *k);
	char err[1024];
	unsigned q;
	int n;

	if (!k) {
		fprintf(stderr, "luadivert rules cleanup: out of memory\n");
		return 1;
	}
	k->force = force;
	n = ld_rules_cleanup(queue, backend, keep_held, k, err, sizeof err);
	if (n < 0) {
		fprintf(stderr, "luadivert rules cleanup: %s\n", err);
		free(k);
		return 1;
	}
	/* a killed instance also left its lock file: delete it the safe way */
	for (q = 0; q < 65536; q++) {
		unsigned char bit = (unsigned char)(1u << (q & 7));
		int fd;

		if (!(k->asked[q >> 3] & bit) || (k->kept[q >> 3] & bit))
			continue;
		fd = ld_rules_lock((uint16_t)q, err, sizeof err);
		if (fd >= 0)
			ld_rules_unlock(fd, (uint16_t)q);
	}
	free(k);
	printf("removed %d luadivert chain%s\n", n, n == 1 ? "" : "s");
	return 0;
}

/* ------------------------------------------------------------------- add */

static int cmd_add(struct ld_rules_cfg *cfg)
{
	char err[1024];
	int fd;

	if (ld_rules_compile(cfg, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "luadivert rules: %s\n", err);
		return 2;
	}
	/* The filter's text goes next to its bytecode, marked as ours to keep. */
	cfg->comment = RULES_ADD_TAG;
	/* A running luadivert owns its queue's rules: do not replace them. */
	fd = ld_rules_lock(cfg->queue, err, sizeof err);
	if (fd < 0) {
		fprintf(stderr, "luadivert rules add: %s\n", err);
		return 1;
	}
	if (ld_rules_install(cfg, err, sizeof err) < 0) {
		fprintf(stderr, "luadivert rules add: %s\n", err);
		ld_rules_unlock(fd, cfg->queue);
		return 1;
	}
	ld_rules_unlock(fd, cfg->queue);
	return 0;
}

/* ----------------------------------------------------------------- print */

static int cmd_print(const struct ld_rules_cfg *cfg)
{
	struct ld_rules_prog prog;
	char err[1024], buf[4096];
	int fam;

	if (ld_rules_compile(cfg, &prog, err, sizeof err) < 0) {
		fprintf(stderr, "luadivert rules: %s\n", err);
		return 2;
	}
	for (fam = 4; fam <= 6; fam += 2) {
		if (ld_rules_render(cfg, &prog, fam, buf, sizeof buf) < 0) {
			fprintf(stderr, "luadivert rules print: rules too long\n");
			return 1;
		}
		if (buf[0] && !(prog.families & (fam == 4 ? LD_RULES_V4 : LD_RULES_V6)))
			printf("# IPv%d: no rules that divert (the filter matches no IPv%d packet); the "
			       "chain holds the offload rules only, which keep conntrack registered "
			       "(docs/rules.md)\n# %s --noflush\n%s", fam, fam,
			       fam == 4 ? "iptables-restore" : "ip6tables-restore", buf);
		else if (buf[0])
			printf("# %s --noflush\n%s", fam == 4 ? "iptables-restore" : "ip6tables-restore",
			       buf);
		else
			printf("# IPv%d: no rules (the filter matches no IPv%d packet)\n", fam, fam);
	}
	return 0;
}

int ld_cmd_rules(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "queue", required_argument, NULL, 'q' },
		{ "force", no_argument, NULL, 'F' },
		{ "filter", required_argument, NULL, 'f' },
		{ "hook", required_argument, NULL, 'H' },
		{ "family", required_argument, NULL, '4' },
		{ "fail-closed", no_argument, NULL, 'c' },
		{ "skip-mark", required_argument, NULL, 'm' },
		{ "no-offload", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_rules_cfg cfg;
	const char *sub;
	unsigned long v;
	int backend = LD_BACKEND_AUTO, queue = -1, force = 0, no_offload = 0, c;
	unsigned hooks = 0;

	if (argc < 2)
		return usage_error("missing subcommand");
	sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		fputs(rules_usage, stdout);
		return 0;
	}
	if (strcmp(sub, "list") && strcmp(sub, "cleanup") && strcmp(sub, "print") &&
	    strcmp(sub, "add") && strcmp(sub, "del"))
		return usage_error("unknown subcommand (list, cleanup, print, add, del)");
	ld_rules_cfg_init(&cfg, 0);

	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
	opterr = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (ld_rules_parse_backend(optarg, &backend) < 0)
				return usage_error("--backend: auto, nft or legacy");
			break;
		case 'q':
			if (parse_uint(optarg, 65535, &v) < 0)
				return usage_error("--queue: a number 0..65535");
			queue = (int)v;
			break;
		case 'F':
			force = 1;
			break;
		case 'f':
			cfg.filter = optarg;
			break;
		case 'H':
			if (ld_rules_parse_hook(optarg, &hooks) < 0)
				return usage_error("--hook: prerouting, input, forward, output, "
						   "postrouting or all (comma separated)");
			break;
		case '4':
			if (strcmp(optarg, "4") && strcmp(optarg, "6"))
				return usage_error("--family: 4 or 6");
			cfg.family = optarg[0] - '0';
			break;
		case 'c':
			cfg.fail_closed = 1;
			break;
		case 'm':
			if (parse_uint(optarg, 0xffffffffUL, &v) < 0)
				return usage_error("--skip-mark: a number (0x... allowed)");
			cfg.skip_mark = (uint32_t)v;
			break;
		case 'O':
			no_offload = 1;
			break;
		case 'h':
			fputs(rules_usage, stdout);
			return 0;
		default:
		{
			char msg[200];

			snprintf(msg, sizeof(msg), "unknown option or missing value: '%s'",
				 optind > 0 ? argv[optind] : "?");  /* argv + 1 was parsed */
			return usage_error(msg);
		}
		}
	}
	if (optind + 1 < argc)
		return usage_error("unexpected argument");

	if (!strcmp(sub, "list"))
		return cmd_list(backend);
	if (!strcmp(sub, "cleanup"))
		return cmd_cleanup(queue, backend, force);
	if ((!strcmp(sub, "add") || !strcmp(sub, "del")) && queue < 0)
		return usage_error("add and del need --queue N");
	if (!strcmp(sub, "del"))
		return cmd_cleanup(queue, backend, force);
	cfg.queue = (uint16_t)(queue < 0 ? 0 : queue);
	if (hooks)
		cfg.hooks = hooks;
	if (!strcmp(sub, "add")) {
		cfg.backend = backend;
		return cmd_add(&cfg);
	}
	/* what `run` installs: the offload rules of the first generation */
	cfg.offload_gen = no_offload ? 0 : LD_OFFLOAD_GEN_FIRST;
	return cmd_print(&cfg);
}

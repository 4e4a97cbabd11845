// SPDX-License-Identifier: MIT
/*
 * rules_cli.c - `luadivert rules list|cleanup|print`: see and remove the
 * divert rules luadivert installed in this network namespace, and show
 * what a --filter would install.
 */
#include "commands.h"
#include "rules.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char rules_usage[] =
	"usage: luadivert rules list [--backend auto|nft|legacy]\n"
	"       luadivert rules cleanup [--queue N] [--backend auto|nft|legacy] [--force]\n"
	"       luadivert rules print [--queue N] [--filter EXPR] [--hook H]... [--family 4|6]\n"
	"                             [--fail-closed] [--skip-mark X]\n"
	"\n"
	"  list     show every LUADIVERT-Q<n> chain, its rules and the jumps to it, for\n"
	"           both iptables backends (nft, legacy) and both families, and whether\n"
	"           a running luadivert holds each queue\n"
	"  cleanup  remove them (all, or one --queue's); rules of a queue that a running\n"
	"           luadivert holds are left alone unless --force\n"
	"  print    show the iptables-restore input `luadivert run` would install for\n"
	"           these options (needs no root, installs nothing)\n"
	"\n"
	"  --backend auto (default: both backends for list/cleanup)\n"
	"  --hook    prerouting, input, forward, output, postrouting, all (default input,output)\n";

static int usage_error(const char *what)
{
	fprintf(stderr, "luadivert rules: %s\n%s", what, rules_usage);
	return 2;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	if (!s || !*s || *s == '-')
		return -1;
	*v = strtoul(s, &end, 0);
	return errno || *end || *v > max ? -1 : 0;
}

/* ------------------------------------------------------------------ list */

struct list_ctx {
	int  backend, family;
	char table[64];
	int  any;
	unsigned char seen[65536 / 8];
};

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
	if (item == LD_RULES_ITEM_CHAIN)
		printf("  -N %.*s\n", (int)strcspn(line + 1, " "), line + 1);
	else
		printf("  %s\n", line);
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
		if (buf[0])
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ld_rules_cfg cfg;
	const char *sub;
	unsigned long v;
	int backend = LD_BACKEND_AUTO, queue = -1, force = 0, c;
	unsigned hooks = 0;

	if (argc < 2)
		return usage_error("missing subcommand");
	sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		fputs(rules_usage, stdout);
		return 0;
	}
	if (strcmp(sub, "list") && strcmp(sub, "cleanup") && strcmp(sub, "print"))
		return usage_error("unknown subcommand (list, cleanup, print)");
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
	cfg.queue = (uint16_t)(queue < 0 ? 0 : queue);
	if (hooks)
		cfg.hooks = hooks;
	return cmd_print(&cfg);
}

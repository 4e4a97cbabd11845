// SPDX-License-Identifier: MIT
/* main.c - `luadivert COMMAND ...`: pick the subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

#ifndef LD_VERSION
#define LD_VERSION "0.0.0"
#endif

static const char usage[] =
	"usage: luadivert COMMAND [options]\n"
	"\n"
	"Divert sockets for Linux, scripted in Lua: packets that firewall rules send to\n"
	"an NFQUEUE queue are handed to a Lua policy that passes, changes, holds or\n"
	"drops each one.\n"
	"\n"
	"commands:\n"
	"  run POLICY [options]       run a policy on live traffic from a queue\n"
	"  check POLICY               load and validate a policy (no root needed)\n"
	"  reload [--queue N]         reload the policy of the running instance\n"
	"  replay POLICY IN.pcap -w OUT.pcap\n"
	"                             run a policy over a capture, offline (no root)\n"
	"  rules list|cleanup|print   see or remove the divert rules luadivert installed\n"
	"  stats [--queue N] [--watch]\n"
	"                             live counters and rates of a running instance\n"
	"\n"
	"  luadivert COMMAND --help   options of a command\n"
	"  luadivert --version        version\n"
	"\n"
	"See man luadivert and README.md.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "run", ld_cmd_run },
	{ "check", ld_cmd_check },
	{ "reload", ld_cmd_reload },
	{ "replay", ld_cmd_replay },
	{ "rules", ld_cmd_rules },
	{ "stats", ld_cmd_stats },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return LD_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return LD_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("luadivert %s\n", LD_VERSION);
		return LD_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "luadivert: unknown command '%s'\n\n%s", argv[1], usage);
	return LD_EXIT_USAGE;
}

/* SPDX-License-Identifier: MIT */
/*
 * commands.h - the luadivert subcommands. main.c parses the first word and
 * hands argc/argv (argv[0] = the subcommand's name) to one of these.
 * Each returns the process exit status: 0 ok, 1 failure, 2 bad usage.
 */
#ifndef LD_COMMANDS_H
#define LD_COMMANDS_H

int ld_cmd_run(int argc, char **argv);     /* run.c:    live traffic from a queue */
int ld_cmd_check(int argc, char **argv);   /* run.c:    load and validate a policy */
int ld_cmd_reload(int argc, char **argv);  /* reload.c: signal the running instance */
int ld_cmd_replay(int argc, char **argv);  /* replay.c: run a policy over a capture */
int ld_cmd_rules(int argc, char **argv);   /* rules_cli.c: list / cleanup installed rules */
int ld_cmd_stats(int argc, char **argv);   /* stats_cli.c: live view from the metrics endpoint */

#endif /* LD_COMMANDS_H */

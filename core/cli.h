/* SPDX-License-Identifier: MIT */
/* cli.h - small helpers shared by the subcommands' option parsers. */
#ifndef LD_CLI_H
#define LD_CLI_H

#include <stdint.h>

enum {
	LD_EXIT_OK = 0,
	LD_EXIT_FAIL = 1,        /* could not start (policy error, queue busy) or fatal error */
	LD_EXIT_USAGE = 2,
	LD_EXIT_GAVE_UP = 3,     /* run: the policy kept hanging or crashing and was given up on */
	LD_EXIT_STOP_KILLED = 4, /* run: the policy did not stop within --stop-timeout */
};

/**
 * ld_parse_number() - the one number parser of the command line: the
 * unsigned number at the start of @s, and where it ends
 * @s: text; it must start with a digit (no blank, no sign)
 * @base: 10, or 0 for C's prefixes (0x hexadecimal, 0 octal)
 * @max: largest value allowed
 * @out: receives the value
 * @rest: receives what follows the number ("" when nothing does): a unit
 *
 * Return: 0, or -1 when @s does not start with such a number.
 */
int ld_parse_number(const char *s, int base, uint64_t max, uint64_t *out, const char **rest);

/**
 * ld_parse_u64() - parse a whole number within [min, max] (ld_parse_number, nothing after it)
 * @s: text
 * @base: 10, or 0 for C's prefixes
 * @min: smallest value allowed
 * @max: largest value allowed
 * @out: receives the value
 *
 * Return: 0, or -1 when @s is not such a number.
 */
int ld_parse_u64(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out);

/**
 * ld_parse_u32() - parse a whole decimal number within [min, max]
 * @s: text
 * @min: smallest value allowed
 * @max: largest value allowed
 * @out: receives the value
 *
 * Return: 0, or -1 when @s is not such a number.
 */
int ld_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);


/**
 * ld_usage_error() - print "luadivert CMD: message" and a hint on stderr
 * @cmd: subcommand name
 * @fmt: printf format
 *
 * Return: LD_EXIT_USAGE, so callers can `return ld_usage_error(...)`.
 */
int ld_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * ld_bad_option() - the command-line word getopt_long() just refused
 * @argv: the argument vector given to getopt_long()
 *
 * Commands set opterr = 0 so that getopt prints nothing: one message, ours,
 * names the word (unknown option, or an option missing its value).
 * Return: the word.
 */
const char *ld_bad_option(char **argv);

#endif /* LD_CLI_H */

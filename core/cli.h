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
 * ld_parse_size() - parse a size in bytes: a whole number with an optional
 * K, M or G suffix (powers of 1024), e.g. "256M"
 * @s: text
 * @out: receives the size in bytes
 *
 * Return: 0, or -1 when @s is not such a size or does not fit.
 */
int ld_parse_size(const char *s, unsigned long long *out);

/**
 * ld_usage_error() - print "luadivert CMD: message" and a hint on stderr
 * @cmd: subcommand name
 * @fmt: printf format
 *
 * Return: LD_EXIT_USAGE, so callers can `return ld_usage_error(...)`.
 */
int ld_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * ld_default_pidfile() - the pid file of the instance on @queue
 * @queue: queue number
 * @out: receives the path
 * @outlen: size of @out
 */
void ld_default_pidfile(uint32_t queue, char *out, unsigned long outlen);

#endif /* LD_CLI_H */

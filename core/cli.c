// SPDX-License-Identifier: MIT
/* cli.c - option parsing helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int ld_parse_number(const char *s, int base, uint64_t max, uint64_t *out, const char **rest)
{
	char *end;
	unsigned long long v;

	/* strtoull would skip blanks and take a sign: only digits start a number */
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s || v > max)
		return -1;
	*out = v;
	*rest = end;
	return 0;
}

int ld_parse_u64(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *rest;
	uint64_t v;

	if (ld_parse_number(s, base, max, &v, &rest) < 0 || *rest || v < min)
		return -1;
	*out = v;
	return 0;
}

int ld_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (ld_parse_u64(s, 10, min, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int ld_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "luadivert %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'luadivert %s --help'.\n", cmd);
	return LD_EXIT_USAGE;
}

const char *ld_bad_option(char **argv)
{
	return optind > 0 ? argv[optind - 1] : "?";
}

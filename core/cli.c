// SPDX-License-Identifier: MIT
/* cli.c - option parsing helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef LD_RUNDIR
#define LD_RUNDIR "/run/luadivert"
#endif

int ld_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int ld_parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'K' || *end == 'k')
		mult = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mult = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mult = 1ull << 30;
	else if (*end)
		return -1;
	if (*end && end[1])
		return -1;
	if (v > ~0ull / mult)
		return -1;
	*out = v * mult;
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

void ld_default_pidfile(uint32_t queue, char *out, unsigned long outlen)
{
	const char *dir = getenv("LUADIVERT_RUNDIR");

	snprintf(out, outlen, "%s/queue-%u.pid", dir && *dir ? dir : LD_RUNDIR, queue);
}

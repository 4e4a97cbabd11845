// SPDX-License-Identifier: MIT
/* cli.c - option parsing helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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

void ld_default_pidfile(uint32_t queue, char *out, unsigned long outlen)
{
	const char *dir = getenv("LUADIVERT_RUNDIR");
	struct stat st;

	/* queue numbers are per network namespace, and so is the file */
	if (stat("/proc/self/ns/net", &st) < 0)
		st.st_ino = 0;
	snprintf(out, outlen, "%s/net%llu-queue-%u.pid", dir && *dir ? dir : LD_RUNDIR,
		 (unsigned long long)st.st_ino, queue);
}

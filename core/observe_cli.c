// SPDX-License-Identifier: MIT
/* observe_cli.c - option helpers of --metrics/--record/--report (observe_cli.h). */
#include "observe_cli.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ld_parse_size(const char *s, uint64_t min, uint64_t *out)
{
	const char *end;
	uint64_t v;
	unsigned shift = 0;

	if (ld_parse_number(s, 10, UINT64_MAX, &v, &end) < 0)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return -1;
	}
	if ((*end == 'b' || *end == 'B') && shift)
		end++;
	if (*end || v > (UINT64_MAX >> shift) || (v << shift) < min)
		return -1;
	*out = v << shift;
	return 0;
}

int ld_write_text_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -1;
	fprintf(f, "%s\n", text);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

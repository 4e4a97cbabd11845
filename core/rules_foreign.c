// SPDX-License-Identifier: MIT
/* rules_foreign.c - rules of someone else's that feed our queue (see rules_foreign.h). */
#include "rules_foreign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rules.h"

static const char *opt_value(const char *line, const char *opt)
{
	const char *p = strstr(line, opt);

	return p ? p + strlen(opt) : NULL;
}

int ld_rules_line_queues(const char *line, uint16_t queue)
{
	const char *v;

	if (strncmp(line, "-A ", 3) != 0 || strncmp(line + 3, "LUADIVERT-Q", 11) == 0)
		return 0;
	if (!strstr(line, " -j NFQUEUE"))
		return 0;
	if ((v = opt_value(line, " --queue-num "))) {
		return strtoul(v, NULL, 10) == queue;
	} else if ((v = opt_value(line, " --queue-balance "))) {
		char *end;
		unsigned long lo = strtoul(v, &end, 10), hi = lo;

		if (*end == ':')
			hi = strtoul(end + 1, NULL, 10);
		return queue >= lo && queue <= hi;
	}
	return queue == 0;
}

struct foreign_ctx {
	uint16_t queue;
	int found;
};

static void scan_text(void *ctx, int backend, int family, const char *text)
{
	struct foreign_ctx *f = ctx;
	char table[64] = "", line[1024];

	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);

		if (len < sizeof(line)) {
			memcpy(line, text, len);
			line[len] = '\0';
			if (line[0] == '*')
				snprintf(table, sizeof(table), "%.63s", line + 1);
			else if (ld_rules_line_queues(line, f->queue)) {
				f->found++;
				ld_log("warning: queue %u: another rule already sends packets here "
				       "(%s, IPv%d, table %s): %s. With luadivert's own rules as well, "
				       "those packets are diverted twice; remove that rule, or run "
				       "with --no-rules", f->queue, ld_rules_backend_name(backend),
				       family, table, line);
			}
		}
		text = nl ? nl + 1 : NULL;
	}
}

int ld_rules_warn_foreign(uint16_t queue, int backend)
{
	struct foreign_ctx f = { queue, 0 };
	char err[256];

	if (ld_rules_read_saves(backend, scan_text, &f, err, sizeof(err)) < 0)
		return 0;
	return f.found;
}

// SPDX-License-Identifier: MIT
/* workers_cli.c - `luadivert run --workers N|auto` (workers_cli.h). */
#include "workers_cli.h"

#include <string.h>
#include <unistd.h>

#include "cli.h"

int ld_parse_workers(const char *arg, uint32_t *out)
{
	if (strcmp(arg, "auto") == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		*out = n < 1 ? 1 : n > LD_WORKERS_MAX ? LD_WORKERS_MAX : (uint32_t)n;
		return 0;
	}
	return ld_parse_u32(arg, 1, LD_WORKERS_MAX, out);
}

int ld_workers_check(struct ld_super_cfg *sup, const struct ld_worker_cfg *w,
		     struct ld_rules_cfg *rules, int no_rules)
{
	uint32_t n = sup->workers ? sup->workers : 1;

	sup->workers = n;
	if (rules->cpu_fanout && n < 2) {
		ld_usage_error("run", "--cpu-fanout spreads packets over the queues of "
			       "--workers N (N > 1)");
		return -1;
	}
	if (rules->cpu_fanout && no_rules) {
		ld_usage_error("run", "--no-rules installs nothing: --cpu-fanout does not apply");
		return -1;
	}
	if (n < 2)
		return 0;
	if ((uint32_t)w->nfq.queue + n - 1 > 65535) {
		ld_usage_error("run", "--queue %u --workers %u: the queues %u..%u go past 65535",
			       (unsigned)w->nfq.queue, n, (unsigned)w->nfq.queue,
			       (unsigned)w->nfq.queue + n - 1);
		return -1;
	}
	/*
	 * /metrics labels each queue (ld_obs_add_queue()); the record and the
	 * report are built on one queue's packets and counters, and with
	 * several workers they would silently cover one queue of N. Refused
	 * rather than wrong (docs/process.md).
	 */
	if (w->obs.record_path || w->obs.report_path) {
		ld_usage_error("run", "--record and --report cover one queue: they do not work "
			       "with --workers %u yet (/metrics and the counter lines at SIGUSR1 "
			       "and at exit cover every queue)", n);
		return -1;
	}
	rules->queues = (uint16_t)n;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * workers_cli.h - issue 16: `luadivert run --workers N|auto` on the
 * command line: parse it, check it against the other options.
 */
#ifndef LD_WORKERS_CLI_H
#define LD_WORKERS_CLI_H

#include <stdint.h>

#include "rules.h"
#include "supervisor.h"

/**
 * ld_parse_workers() - parse the value of --workers
 * @arg: "1".."LD_WORKERS_MAX" or "auto" (the number of CPUs online)
 * @out: receives the number
 *
 * Return: 0, or -1 if @arg is neither.
 */
int ld_parse_workers(const char *arg, uint32_t *out);

/**
 * ld_workers_check() - check --workers against the rest of the command line
 * and put the number of queues into the rules
 * @sup: supervisor configuration (workers set, 0 = 1)
 * @w: the worker configuration parsed so far (queue, --metrics, --record, --report)
 * @rules: the command line's rules; queues is set here
 * @no_rules: --no-rules was given
 *
 * Prints the usage error itself.
 *
 * Return: 0, or -1 (exit status 2).
 */
int ld_workers_check(struct ld_super_cfg *sup, const struct ld_worker_cfg *w,
		     struct ld_rules_cfg *rules, int no_rules);

#endif /* LD_WORKERS_CLI_H */

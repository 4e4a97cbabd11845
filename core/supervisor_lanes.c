// SPDX-License-Identifier: MIT
/*
 * supervisor_lanes.c - issue 16, `luadivert run --workers N`: the lanes
 * (struct lane in supervisor_priv.h), one per queue Q..Q+N-1. Each has its
 * own queue socket, shared region, workers and restart budget, so nothing
 * is shared between workers on the packet path. Here: making and freeing
 * them, pinning a lane's workers to a CPU, the questions the event loop
 * asks about all lanes at once, and the total counter line.
 */
#include "supervisor_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "counters.h"
#include "rules.h"

/* The CPU lane @idx runs on: the idx-th (mod their number) CPU we may use. */
static int pick_cpu(unsigned idx)
{
	cpu_set_t set;
	int n, seen = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -1;
	n = CPU_COUNT(&set);
	if (n <= 0)
		return -1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && seen++ == (int)(idx % (unsigned)n))
			return cpu;
	return -1;
}

/**
 * ld_lanes_new() - allocate the lanes and take each queue's lock
 * @s: supervisor; s->cfg set
 * @err: receives why not
 * @errlen: size of @err
 *
 * One luadivert per queue: every queue of the range is locked, so a second
 * instance on an overlapping range refuses to start. On failure the locks
 * taken are released and the lanes freed.
 *
 * Return: 0, or -1.
 */
int ld_lanes_new(struct super *s, char *err, size_t errlen)
{
	const struct ld_super_cfg *cfg = s->cfg;
	unsigned n = cfg->workers > 1 ? cfg->workers : 1;

	s->lanes = calloc(n, sizeof(*s->lanes));
	if (!s->lanes) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->nlanes = n;
	for (unsigned i = 0; i < n; i++) {
		struct lane *l = &s->lanes[i];

		l->idx = i;
		l->queue = (uint16_t)(cfg->w.nfq.queue + i);
		l->cpu = n > 1 ? pick_cpu(i) : -1;   /* one worker: as before, unpinned */
		l->cur.ctl = l->nxt.ctl = -1;
		l->nfq.fd = -1;
		l->lock_fd = ld_rules_lock(l->queue, err, errlen);
		if (l->lock_fd < 0) {
			s->nlanes = i;
			ld_lanes_free(s);
			return -1;
		}
	}
	return 0;
}

/**
 * ld_lanes_free() - free what ld_lanes_new() and the set-up made: the
 * shared regions, the restart rings, the locks
 * @s: supervisor; the queue sockets are closed already (finish())
 */
void ld_lanes_free(struct super *s)
{
	LANES(s, l) {
		if (l->tables)
			munmap(l->tables, sizeof(*l->tables));
		free(l->restarts);
		ld_shared_destroy(l->sh);
		ld_rules_unlock(l->lock_fd, l->queue);
	}
	free(s->lanes);
	s->lanes = NULL;
	s->nlanes = 0;
}

/**
 * ld_lane_pin() - pin the calling process (a lane's worker, just forked,
 * not yet sandboxed) to its lane's CPU
 * @l: lane
 *
 * A failure costs locality, not correctness: logged, and the worker runs on.
 */
void ld_lane_pin(const struct lane *l)
{
	cpu_set_t set;

	if (l->cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(l->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		ld_log("queue %u: pinning the worker to CPU %d: %s", l->queue, l->cpu,
		       strerror(errno));
}

/**
 * ld_lanes_all() - is every lane's worker in state @st
 * @s: supervisor
 * @nxt: 1: the reload candidates, 0: the serving workers
 * @st: the state
 *
 * Return: 1 or 0.
 */
int ld_lanes_all(const struct super *s, int nxt, enum wstate st)
{
	for (unsigned i = 0; i < s->nlanes; i++) {
		const struct wproc *w = nxt ? &s->lanes[i].nxt : &s->lanes[i].cur;

		if (w->pid <= 0 || w->state != st)
			return 0;
	}
	return 1;
}

/**
 * ld_lanes_any_nxt() - does a lane still have a reload candidate
 * @s: supervisor
 *
 * Return: 1 or 0.
 */
int ld_lanes_any_nxt(const struct super *s)
{
	for (unsigned i = 0; i < s->nlanes; i++)
		if (s->lanes[i].nxt.pid > 0)
			return 1;
	return 0;
}

/**
 * ld_lane_of_pid() - the lane a worker belongs to
 * @s: supervisor
 * @pid: the worker's pid
 * @w: receives &lane->cur or &lane->nxt
 *
 * Return: the lane, or NULL (not one of ours: nothing to do).
 */
struct lane *ld_lane_of_pid(struct super *s, pid_t pid, struct wproc **w)
{
	LANES(s, l) {
		if (pid == l->cur.pid) {
			*w = &l->cur;
			return l;
		}
		if (pid == l->nxt.pid) {
			*w = &l->nxt;
			return l;
		}
	}
	return NULL;
}

/**
 * ld_lanes_print_total() - with more than one lane, the sum of their
 * counters as one line: "luadivert: total (queues Q-R, N workers): received ..."
 * @s: supervisor
 * @with_kernel: add the queues' kernel counters (0 once the queues are gone)
 *
 * The fields are those of the per-queue lines (ld_counters_print()), so a
 * script parses both alike. gave_up is the number of lanes that gave up.
 */
void ld_lanes_print_total(const struct super *s, int with_kernel)
{
	struct ld_counters sum = { 0 };
	struct ld_kernel_counters k = { 0 };
	uint64_t *d = (uint64_t *)&sum;
	char line[4096], *fields;
	FILE *mf;

	if (s->nlanes < 2)
		return;
	for (unsigned i = 0; i < s->nlanes; i++) {
		const uint64_t *c = (const uint64_t *)&s->lanes[i].sh->c;
		struct ld_kernel_counters kl;

		for (size_t j = 0; j < sizeof(sum) / sizeof(uint64_t); j++)
			d[j] += c[j];
		if (with_kernel && ld_kernel_counters_read(s->lanes[i].queue, &kl) == 0 &&
		    kl.valid) {
			k.valid = 1;
			k.queue_total += kl.queue_total;
			k.queue_dropped += kl.queue_dropped;
			k.user_dropped += kl.user_dropped;
		}
	}
	mf = fmemopen(line, sizeof(line), "w");
	if (!mf)
		return;
	ld_counters_print(mf, s->lanes[0].queue, &sum, k.valid ? &k : NULL);
	fclose(mf);
	line[sizeof(line) - 1] = '\0';
	fields = strstr(line, ": received ");   /* past "luadivert: queue Q" */
	if (!fields)
		return;
	fprintf(stderr, "luadivert: total (queues %u-%u, %u workers)%s", s->lanes[0].queue,
		s->lanes[s->nlanes - 1].queue, s->nlanes, fields);
	fflush(stderr);
}

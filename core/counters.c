// SPDX-License-Identifier: MIT
/* counters.c - printing our counters and reading the kernel's. */
#include "counters.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* 1 us .. 50 ms: a batch of 64 takes ~10-100 us; a slow policy shows up high. */
const uint64_t ld_batch_bucket_le_ns[LD_BATCH_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 10000000, 50000000, UINT64_MAX,
};

#define NFQ_PROC "/proc/net/netfilter/nfnetlink_queue"

/*
 * The proc file is 0440 root: only the supervisor (root) reads it; the
 * sandboxed worker never does. It is opened once and read again from the
 * start each time (a seq_file regenerates its text at offset 0). One
 * descriptor per process: it is read-only, and the file is per network
 * namespace, which every queue of a process shares.
 */
static int nfq_proc_fd = -1;

int ld_kernel_counters_open(void)
{
	if (nfq_proc_fd < 0)
		nfq_proc_fd = open(NFQ_PROC, O_RDONLY | O_CLOEXEC);
	return nfq_proc_fd < 0 ? -1 : 0;
}

int ld_kernel_counters_read(uint16_t queue, struct ld_kernel_counters *k)
{
	unsigned q, portid, total, mode, range, qdrop, udrop, seq;
	char text[16384], *line, *save = NULL;
	size_t used = 0;
	ssize_t n;

	k->valid = 0;
	if (ld_kernel_counters_open() < 0 || lseek(nfq_proc_fd, 0, SEEK_SET) < 0)
		return -1;
	while (used < sizeof(text) - 1 &&
	       (n = read(nfq_proc_fd, text + used, sizeof(text) - 1 - used)) > 0)
		used += (size_t)n;
	text[used] = '\0';
	/* queue portid total copy_mode copy_range queue_dropped user_dropped id_sequence 1 */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%u %u %u %u %u %u %u %u", &q, &portid, &total, &mode,
			   &range, &qdrop, &udrop, &seq) != 8 || q != queue)
			continue;
		k->valid = 1;
		k->queue_total = total;
		k->queue_dropped = qdrop;
		k->user_dropped = udrop;
		k->id_sequence = seq;
		break;
	}
	return 0;
}

void ld_counters_print(FILE *f, uint16_t queue, const struct ld_counters *c,
		       const struct ld_kernel_counters *k)
{
	double mean = c->batches ? (double)c->received / (double)c->batches : 0.0;

	fprintf(f,
		"luadivert: queue %u: received %" PRIu64 " passed %" PRIu64 " dropped %" PRIu64
		" modified %" PRIu64 " errors %" PRIu64 " batches %" PRIu64 " mean_batch %.1f"
		" held %" PRIu64 " hold_overflow %" PRIu64 " injected %" PRIu64
		" inject_errors %" PRIu64 " send_errors %" PRIu64 " kernel_errors %" PRIu64
		" recv_errors %" PRIu64 " reloads %" PRIu64 " reload_errors %" PRIu64
		" worker_restarts %" PRIu64 " worker_hangs %" PRIu64 " worker_crashes %" PRIu64
		" recovered %" PRIu64 " gave_up %" PRIu64
		" taken %" PRIu64 " copy_overflow %" PRIu64 " requeued %" PRIu64
		" segments %" PRIu64 " offloaded %" PRIu64 " offload_missed %" PRIu64,
		queue, c->received, c->passed, c->dropped, c->modified, c->errors, c->batches,
		mean, c->held, c->hold_overflow, c->injected, c->inject_errors, c->send_errors,
		c->kernel_errors, c->recv_errors, c->reloads, c->reload_errors,
		c->worker_restarts, c->worker_hangs, c->worker_crashes, c->recovered, c->gave_up,
		c->taken, c->copy_overflow, c->requeued, c->segments, c->offloaded,
		c->offload_missed);
	if (k && k->valid)
		fprintf(f, " kernel_queue_total %u kernel_queue_dropped %u kernel_user_dropped %u"
			" kernel_id_sequence %u", k->queue_total, k->queue_dropped,
			k->user_dropped, k->id_sequence);
	fputc('\n', f);
	fflush(f);
}

static void rate_row(FILE *f, const char *name, uint64_t now, uint64_t before, double dt_s,
		     const char *note)
{
	double rate = dt_s > 0 && now >= before ? (double)(now - before) / dt_s : 0.0;

	fprintf(f, "  %-14s %14" PRIu64 " %14.1f%s\n", name, now, rate, note);
}

void ld_counters_print_rates(FILE *f, uint16_t queue, const struct ld_counters *c,
			     const struct ld_counters *prev, double dt_s,
			     const struct ld_kernel_counters *k, const struct ld_kernel_counters *kprev)
{
	char note[96];
	uint64_t kd = 0, kdp = 0;

	fprintf(f, "luadivert: queue %u, the last %.2f s:\n  %-14s %14s %14s\n", queue, dt_s, "",
		"total", "per second");
	rate_row(f, "in", c->received, prev->received, dt_s, "");
	rate_row(f, "passed", c->passed, prev->passed, dt_s, "");
	rate_row(f, "dropped", c->dropped, prev->dropped, dt_s, "");
	rate_row(f, "modified", c->modified, prev->modified, dt_s, "");
	snprintf(note, sizeof(note), "   (held now %" PRIu64 ", overflow %" PRIu64 ")", c->held_now,
		 c->hold_overflow);
	rate_row(f, "held", c->held, prev->held, dt_s, note);
	rate_row(f, "handler errors", c->errors, prev->errors, dt_s, "");
	rate_row(f, "batches", c->batches, prev->batches, dt_s, "");
	if (k && k->valid) {
		kd = (uint64_t)k->queue_dropped + k->user_dropped;
		if (kprev && kprev->valid)
			kdp = (uint64_t)kprev->queue_dropped + kprev->user_dropped;
		snprintf(note, sizeof(note), "   (queue full %u, not delivered %u, waiting %u)",
			 k->queue_dropped, k->user_dropped, k->queue_total);
		rate_row(f, "kernel drops", kd, kdp, dt_s, note);
	}
	fprintf(f, "  reloads: %" PRIu64 " ok, %" PRIu64 " refused\n", c->reloads, c->reload_errors);
	fflush(f);
}

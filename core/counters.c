// SPDX-License-Identifier: MIT
/* counters.c - printing our counters and reading the kernel's. */
#include "counters.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

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
		" recovered %" PRIu64 " gave_up %" PRIu64,
		queue, c->received, c->passed, c->dropped, c->modified, c->errors, c->batches,
		mean, c->held, c->hold_overflow, c->injected, c->inject_errors, c->send_errors,
		c->kernel_errors, c->recv_errors, c->reloads, c->reload_errors,
		c->worker_restarts, c->worker_hangs, c->worker_crashes, c->recovered, c->gave_up);
	if (k && k->valid)
		fprintf(f, " kernel_queue_total %u kernel_queue_dropped %u kernel_user_dropped %u"
			" kernel_id_sequence %u", k->queue_total, k->queue_dropped,
			k->user_dropped, k->id_sequence);
	fputc('\n', f);
	fflush(f);
}

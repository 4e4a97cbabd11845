// SPDX-License-Identifier: MIT
/* counters.c - printing our counters and reading the kernel's. */
#include "counters.h"

#include <inttypes.h>

#define NFQ_PROC "/proc/net/netfilter/nfnetlink_queue"

int ld_kernel_counters_read(uint16_t queue, struct ld_kernel_counters *k)
{
	unsigned q, portid, total, mode, range, qdrop, udrop, seq;
	char line[256];
	FILE *f;

	k->valid = 0;
	f = fopen(NFQ_PROC, "re");
	if (!f)
		return -1;
	/* queue portid total copy_mode copy_range queue_dropped user_dropped id_sequence 1 */
	while (fgets(line, sizeof(line), f)) {
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
	fclose(f);
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
		" segments %" PRIu64,
		queue, c->received, c->passed, c->dropped, c->modified, c->errors, c->batches,
		mean, c->held, c->hold_overflow, c->injected, c->inject_errors, c->send_errors,
		c->kernel_errors, c->recv_errors, c->reloads, c->reload_errors,
		c->worker_restarts, c->worker_hangs, c->worker_crashes, c->recovered, c->gave_up,
		c->taken, c->copy_overflow, c->requeued, c->segments);
	if (k && k->valid)
		fprintf(f, " kernel_queue_total %u kernel_queue_dropped %u kernel_user_dropped %u"
			" kernel_id_sequence %u", k->queue_total, k->queue_dropped,
			k->user_dropped, k->id_sequence);
	fputc('\n', f);
	fflush(f);
}

/* SPDX-License-Identifier: MIT */
/* counters.h - what a worker has done, printed on exit and on SIGUSR1. */
#ifndef LD_COUNTERS_H
#define LD_COUNTERS_H

#include <stdint.h>
#include <stdio.h>

enum { LD_BATCH_BUCKETS = 14 };  /* batch-time histogram buckets, the last is +Inf */

struct ld_counters {
	uint64_t received;      /* packets read from the queue */
	uint64_t passed;        /* verdicts: accept (including queue-to-N and repeat) */
	uint64_t dropped;       /* verdicts: drop */
	uint64_t modified;      /* verdicts that carried new packet bytes */
	uint64_t errors;        /* handler errors and non-verdict returns */
	uint64_t batches;       /* calls into Lua */
	uint64_t held;          /* packets held for later */
	uint64_t hold_overflow; /* holds refused because the hold table was full */
	uint64_t injected;      /* duplicate copies sent through the raw socket */
	uint64_t inject_errors; /* copies that could not be sent */
	uint64_t send_errors;   /* verdict sendmsg failures */
	uint64_t kernel_errors; /* error replies from the kernel to our verdicts */
	uint64_t recv_errors;   /* ENOBUFS and other recoverable receive errors */
	uint64_t reloads;       /* successful policy reloads */
	uint64_t reload_errors; /* reloads refused because the new policy had errors */
	/* issue 13 (metrics): what the Prometheus endpoint and the report need */
	uint64_t repeated;      /* of passed: NF_REPEAT verdicts */
	uint64_t queued;        /* of passed: queue-to-N verdicts */
	uint64_t defaulted;     /* of passed/dropped: default verdict after a handler error */
	uint64_t bytes_received; /* bytes of the packets read from the queue */
	uint64_t held_now;      /* gauge: packets held right now */
	uint64_t batch_ns_sum;  /* time spent handling batches (receive to verdicts sent) */
	uint64_t batch_hist[LD_BATCH_BUCKETS]; /* batches per duration bucket, not cumulative */
	/* the supervisor's (core/supervisor.c) */
	uint64_t worker_restarts; /* workers started again after a hang or a crash */
	uint64_t worker_hangs;    /* workers killed: a batch (or init) ran past its deadline */
	uint64_t worker_crashes;  /* workers that died on their own (crash, os.exit, kill) */
	uint64_t recovered;       /* packets a dead worker had in hand: default verdict */
	uint64_t gave_up;         /* 1 once the policy was given up on (default verdicts) */
	uint64_t taken;         /* held local packets taken over: original dropped, copy kept */
	uint64_t copy_overflow; /* ... tail-dropped because the copies would exceed --hold-bytes */
	uint64_t requeued;      /* our own packets (skip mark) queued again by a rule: accepted
	                         * without the policy; not in received or passed */
	uint64_t segments;      /* GSO packets we sent cut in software: segments sent */
	/* issue 16 */
	uint64_t offloaded;     /* of repeated: divert.OFFLOAD verdicts (core/offload.h) */
	uint64_t offload_missed; /* OFFLOADs of packets that came back: no rule saved the mark */
};

/* Upper bounds (ns) of the batch-time histogram buckets; the last is +Inf. */
extern const uint64_t ld_batch_bucket_le_ns[LD_BATCH_BUCKETS];

/**
 * ld_counters_batch_observe() - count one batch that took @ns
 * @c: counters
 * @ns: time from receive to the verdicts sent
 */
static inline void ld_counters_batch_observe(struct ld_counters *c, uint64_t ns)
{
	unsigned i = 0;

	while (i < LD_BATCH_BUCKETS - 1 && ns > ld_batch_bucket_le_ns[i])
		i++;
	c->batch_hist[i]++;
	c->batch_ns_sum += ns;
}

/* The kernel's own view of a queue (/proc/net/netfilter/nfnetlink_queue). */
struct ld_kernel_counters {
	int      valid;          /* 0 when the queue was not listed */
	uint32_t queue_total;    /* packets waiting in the kernel for a verdict */
	uint32_t queue_dropped;  /* dropped by the kernel: queue full */
	uint32_t user_dropped;   /* dropped by the kernel: could not send to us */
	uint32_t id_sequence;    /* last packet id handed out */
};

/**
 * ld_kernel_counters_open() - open the kernel's queue counters file now
 *
 * It is readable by root only (the supervisor reads it, never the
 * sandboxed worker); ld_kernel_counters_read() keeps using the descriptor.
 * Return: 0, or -1 when it cannot be opened.
 */
int ld_kernel_counters_open(void);

/**
 * ld_kernel_counters_read() - read the kernel's counters for @queue
 * @queue: queue number
 * @k: filled in; k->valid says whether the queue was found
 *
 * Return: 0, or -1 when the proc file cannot be read.
 */
int ld_kernel_counters_read(uint16_t queue, struct ld_kernel_counters *k);

/**
 * ld_counters_print() - print counters in "name value" form, one line
 * @f: stream
 * @queue: queue number, for the prefix
 * @c: our counters
 * @k: the kernel's counters (printed when valid)
 */
void ld_counters_print(FILE *f, uint16_t queue, const struct ld_counters *c,
		       const struct ld_kernel_counters *k);

/**
 * ld_counters_print_rates() - a table for people: totals and rates per second
 * @f: stream
 * @queue: queue number
 * @c: counters now
 * @prev: counters @dt_s seconds ago (zeros at start)
 * @dt_s: seconds since @prev
 * @k: the kernel's counters now (may be NULL or !valid)
 * @kprev: the kernel's counters at @prev (may be NULL)
 *
 * SIGUSR1 prints this before the one-line form (which scripts parse); no
 * line of it contains "received N", so a grep for the one-line form still
 * finds only that.
 */
void ld_counters_print_rates(FILE *f, uint16_t queue, const struct ld_counters *c,
			     const struct ld_counters *prev, double dt_s,
			     const struct ld_kernel_counters *k, const struct ld_kernel_counters *kprev);

#endif /* LD_COUNTERS_H */

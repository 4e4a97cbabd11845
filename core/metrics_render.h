/* SPDX-License-Identifier: MIT */
/*
 * metrics_render.h - the Prometheus text format (0.0.4) of luadivert's
 * counters: one or more workers' struct ld_counters, the kernel's queue
 * counters, and the per-pipe and policy metrics the Lua side keeps in a
 * struct ld_metric_tables. Rendering only reads: it takes no lock and works
 * from any process that can see the memory (docs/metrics.md lists the names).
 */
#ifndef LD_METRICS_RENDER_H
#define LD_METRICS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "ld_abi.h"

/* A growing text buffer; once an allocation fails, ->failed stays set. */
struct ld_buf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

/**
 * ld_buf_printf() - append formatted text, growing the buffer
 * @b: buffer
 * @fmt: printf format
 */
void ld_buf_printf(struct ld_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * ld_buf_free() - release the buffer's memory
 * @b: buffer (left empty)
 */
void ld_buf_free(struct ld_buf *b);

/* What one worker exports. */
struct ld_metrics_source {
	uint16_t queue;
	uint32_t default_verdict;               /* LD_PASS or LD_DROP */
	const struct ld_counters *c;            /* the worker's counters */
	const struct ld_kernel_counters *k;     /* may be NULL or !valid */
	const struct ld_metric_tables *t;       /* may be NULL */
	uint64_t now_ns;                        /* packet clock now: pipe queue lengths */
	uint64_t record_written;                /* --record: packets written */
	uint64_t record_dropped;                /* --record: packets not recorded (buffer full) */
};

/**
 * ld_metrics_render() - append the text format of @n sources to @out
 * @out: buffer
 * @src: sources, one per worker
 * @n: how many
 */
void ld_metrics_render(struct ld_buf *out, const struct ld_metrics_source *src, size_t n);

/**
 * ld_pipe_queue_len() - packets a pipe holds at @now_ns (its ring of release times)
 * @m: the pipe's metrics
 * @now_ns: packet clock
 *
 * Return: how many of the last LD_PIPE_RING delayed packets are still due.
 */
uint32_t ld_pipe_queue_len(const struct ld_pipe_metrics *m, uint64_t now_ns);

/**
 * ld_verdict_counts() - split a worker's verdict counters by kind
 * @c: counters
 * @default_verdict: LD_PASS or LD_DROP
 * @out: pass, drop, repeat, queue, offload, default (LD_VERDICT_KINDS values)
 */
enum { LD_VERDICT_KINDS = 6 };
extern const char *const ld_verdict_kind_names[LD_VERDICT_KINDS];
void ld_verdict_counts(const struct ld_counters *c, uint32_t default_verdict,
		       uint64_t out[LD_VERDICT_KINDS]);

#endif /* LD_METRICS_RENDER_H */

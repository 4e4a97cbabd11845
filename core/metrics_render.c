// SPDX-License-Identifier: MIT
/*
 * metrics_render.c - luadivert's counters in the Prometheus text format 0.0.4:
 *
 *   # HELP luadivert_packets_received_total Packets read from the queue.
 *   # TYPE luadivert_packets_received_total counter
 *   luadivert_packets_received_total{queue="0"} 1234
 *
 * Each family is written once with a line per worker (label queue). Values
 * written by Lua are doubles; ours are integers and printed exactly.
 */
#include "metrics_render.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ld_verdict_kind_names[LD_VERDICT_KINDS] = {
	"pass", "drop", "repeat", "queue", "offload", "default",
};

void ld_buf_printf(struct ld_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

void ld_buf_free(struct ld_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void ld_verdict_counts(const struct ld_counters *c, uint32_t default_verdict,
		       uint64_t out[LD_VERDICT_KINDS])
{
	/* passed counts every accept (repeat and queue-to-N too), and both
	 * passed and dropped count the default verdicts: take those out */
	uint64_t pass = c->passed - c->repeated - c->queued, drop = c->dropped;
	/* an OFFLOAD is sent as NF_REPEAT: repeated counts it too */
	uint64_t offloaded = c->offloaded < c->repeated ? c->offloaded : c->repeated;

	if (default_verdict == LD_DROP)
		drop -= c->defaulted < drop ? c->defaulted : drop;
	else
		pass -= c->defaulted < pass ? c->defaulted : pass;
	out[0] = pass;
	out[1] = drop;
	out[2] = c->repeated - offloaded;
	out[3] = c->queued;
	out[4] = offloaded;
	out[5] = c->defaulted;
}

uint32_t ld_pipe_queue_len(const struct ld_pipe_metrics *m, uint64_t now_ns)
{
	uint32_t head = m->ring_head, n = head < LD_PIPE_RING ? head : LD_PIPE_RING, q = 0;
	double now = (double)now_ns;

	for (uint32_t i = 0; i < n; i++)
		if (m->ring[i] > now)
			q++;
	return q;
}

static void family(struct ld_buf *b, const char *name, const char *type, const char *help)
{
	ld_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One integer counter per worker. */
static void per_queue(struct ld_buf *b, const struct ld_metrics_source *s, size_t n,
		      const char *name, const char *type, const char *help, size_t off)
{
	family(b, name, type, help);
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		memcpy(&v, (const char *)s[i].c + off, sizeof(v));
		ld_buf_printf(b, "%s{queue=\"%u\"} %" PRIu64 "\n", name, s[i].queue, v);
	}
}

static void print_double(struct ld_buf *b, double v)
{
	if (isinf(v))
		ld_buf_printf(b, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		ld_buf_printf(b, "NaN");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		ld_buf_printf(b, "%.0f", v);
	else
		ld_buf_printf(b, "%.9g", v);
}

static void render_core(struct ld_buf *b, const struct ld_metrics_source *s, size_t n)
{
#define PQ(name, type, help, field) \
	per_queue(b, s, n, name, type, help, offsetof(struct ld_counters, field))
	PQ("luadivert_packets_received_total", "counter", "Packets read from the queue.", received);
	PQ("luadivert_bytes_received_total", "counter", "Bytes of the packets read from the queue.",
	   bytes_received);
	family(b, "luadivert_verdicts_total", "counter",
	       "Verdicts sent, by kind (default: the handler failed).");
	for (size_t i = 0; i < n; i++) {
		uint64_t v[LD_VERDICT_KINDS];

		ld_verdict_counts(s[i].c, s[i].default_verdict, v);
		for (int k = 0; k < LD_VERDICT_KINDS; k++)
			ld_buf_printf(b, "luadivert_verdicts_total{queue=\"%u\",verdict=\"%s\"} %"
				      PRIu64 "\n", s[i].queue, ld_verdict_kind_names[k], v[k]);
	}
	PQ("luadivert_packets_modified_total", "counter", "Verdicts that carried new packet bytes.",
	   modified);
	PQ("luadivert_packets_held_total", "counter", "Packets held for a later verdict (shaping).",
	   held);
	PQ("luadivert_held_packets", "gauge", "Packets held right now.", held_now);
	PQ("luadivert_hold_overflow_total", "counter",
	   "Holds refused because the hold table was full (the packet was dropped).", hold_overflow);
	PQ("luadivert_handler_errors_total", "counter",
	   "Handler errors and non-verdict returns, and modified bytes that could not be sent.",
	   errors);
	PQ("luadivert_injected_total", "counter", "Duplicate copies sent through the raw socket.",
	   injected);
	PQ("luadivert_inject_errors_total", "counter", "Duplicate copies that could not be sent.",
	   inject_errors);
	PQ("luadivert_verdict_send_errors_total", "counter",
	   "Verdict messages that failed or were refused by the kernel.", send_errors);
	PQ("luadivert_receive_errors_total", "counter", "Recoverable receive errors (ENOBUFS).",
	   recv_errors);
#undef PQ
	family(b, "luadivert_kernel_queue_dropped_total", "counter",
	       "Packets the kernel dropped because the queue was full.");
	for (size_t i = 0; i < n; i++)
		if (s[i].k && s[i].k->valid)
			ld_buf_printf(b, "luadivert_kernel_queue_dropped_total{queue=\"%u\"} %u\n",
				      s[i].queue, s[i].k->queue_dropped);
	family(b, "luadivert_kernel_user_dropped_total", "counter",
	       "Packets the kernel dropped because it could not send them to luadivert.");
	for (size_t i = 0; i < n; i++)
		if (s[i].k && s[i].k->valid)
			ld_buf_printf(b, "luadivert_kernel_user_dropped_total{queue=\"%u\"} %u\n",
				      s[i].queue, s[i].k->user_dropped);
	family(b, "luadivert_kernel_queue_length", "gauge", "Packets waiting in the kernel queue.");
	for (size_t i = 0; i < n; i++)
		if (s[i].k && s[i].k->valid)
			ld_buf_printf(b, "luadivert_kernel_queue_length{queue=\"%u\"} %u\n",
				      s[i].queue, s[i].k->queue_total);
	family(b, "luadivert_reloads_total", "counter", "Policy reloads, by result.");
	{
		uint64_t ok = 0, bad = 0;

		for (size_t i = 0; i < n; i++) {
			ok += s[i].c->reloads;
			bad += s[i].c->reload_errors;
		}
		ld_buf_printf(b, "luadivert_reloads_total{result=\"ok\"} %" PRIu64 "\n"
			      "luadivert_reloads_total{result=\"error\"} %" PRIu64 "\n", ok, bad);
	}
	family(b, "luadivert_batch_seconds", "histogram",
	       "Time to handle one batch: policy, verdicts, releases.");
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = 0;

		for (int j = 0; j < LD_BATCH_BUCKETS; j++) {
			cum += s[i].c->batch_hist[j];
			if (j == LD_BATCH_BUCKETS - 1)
				ld_buf_printf(b, "luadivert_batch_seconds_bucket{queue=\"%u\",le=\"+Inf\"} %"
					      PRIu64 "\n", s[i].queue, cum);
			else
				ld_buf_printf(b, "luadivert_batch_seconds_bucket{queue=\"%u\",le=\"%g\"} %"
					      PRIu64 "\n", s[i].queue,
					      (double)ld_batch_bucket_le_ns[j] / 1e9, cum);
		}
		ld_buf_printf(b, "luadivert_batch_seconds_sum{queue=\"%u\"} %.9f\n"
			      "luadivert_batch_seconds_count{queue=\"%u\"} %" PRIu64 "\n", s[i].queue,
			      (double)s[i].c->batch_ns_sum / 1e9, s[i].queue, cum);
	}
	family(b, "luadivert_record_written_total", "counter", "Packets written by --record.");
	for (size_t i = 0; i < n; i++)
		ld_buf_printf(b, "luadivert_record_written_total{queue=\"%u\"} %" PRIu64 "\n",
			      s[i].queue, s[i].record_written);
	family(b, "luadivert_record_dropped_total", "counter",
	       "Packets --record left out because its buffer was full (a slow disk).");
	for (size_t i = 0; i < n; i++)
		ld_buf_printf(b, "luadivert_record_dropped_total{queue=\"%u\"} %" PRIu64 "\n",
			      s[i].queue, s[i].record_dropped);
}

/* One value of every named pipe of every worker. */
static void pipe_family(struct ld_buf *b, const struct ld_metrics_source *s, size_t n,
			const char *name, const char *type, const char *help, size_t off)
{
	family(b, name, type, help);
	for (size_t i = 0; i < n; i++) {
		const struct ld_metric_tables *t = s[i].t;

		for (uint32_t j = 0; t && j < t->npipes && j < LD_PIPES_MAX; j++) {
			double v;

			memcpy(&v, (const char *)&t->pipes[j] + off, sizeof(v));
			ld_buf_printf(b, "%s{queue=\"%u\",pipe=\"%.*s\"} ", name, s[i].queue,
				      LD_NAME_MAX - 1, t->pipes[j].name);
			print_double(b, v);
			ld_buf_printf(b, "\n");
		}
	}
}

static void render_pipes(struct ld_buf *b, const struct ld_metrics_source *s, size_t n)
{
#define PF(name, type, help, field) \
	pipe_family(b, s, n, name, type, help, offsetof(struct ld_pipe_metrics, field))
	PF("luadivert_pipe_packets_total", "counter", "Packets into a named shaping pipe.", packets);
	PF("luadivert_pipe_bytes_total", "counter", "Bytes into a named shaping pipe.", bytes);
	PF("luadivert_pipe_lost_total", "counter",
	   "Packets a pipe dropped (loss, queue limit, throttle).", lost);
	PF("luadivert_pipe_delayed_total", "counter", "Packets a pipe gave an added delay.", delayed);
#undef PF
	family(b, "luadivert_pipe_queue_length", "gauge", "Packets a pipe holds right now.");
	for (size_t i = 0; i < n; i++)
		for (uint32_t j = 0; s[i].t && j < s[i].t->npipes && j < LD_PIPES_MAX; j++)
			ld_buf_printf(b, "luadivert_pipe_queue_length{queue=\"%u\",pipe=\"%.*s\"} %u\n",
				      s[i].queue, LD_NAME_MAX - 1, s[i].t->pipes[j].name,
				      ld_pipe_queue_len(&s[i].t->pipes[j], s[i].now_ns));
	family(b, "luadivert_pipe_delay_seconds", "histogram",
	       "Delay a pipe added to each packet it let through.");
	for (size_t i = 0; i < n; i++) {
		const struct ld_metric_tables *t = s[i].t;

		for (uint32_t j = 0; t && j < t->npipes && j < LD_PIPES_MAX; j++) {
			const struct ld_pipe_metrics *m = &t->pipes[j];
			double cum = 0;

			for (int k = 0; k < LD_DELAY_BUCKETS; k++) {
				cum += m->delay_count[k];
				ld_buf_printf(b, "luadivert_pipe_delay_seconds_bucket{queue=\"%u\",pipe=\"%.*s\","
					      "le=\"", s[i].queue, LD_NAME_MAX - 1, m->name);
				if (k == LD_DELAY_BUCKETS - 1)
					ld_buf_printf(b, "+Inf");
				else
					ld_buf_printf(b, "%g", t->delay_le_s[k]);
				ld_buf_printf(b, "\"} %.0f\n", cum);
			}
			ld_buf_printf(b, "luadivert_pipe_delay_seconds_sum{queue=\"%u\",pipe=\"%.*s\"} %.9f\n"
				      "luadivert_pipe_delay_seconds_count{queue=\"%u\",pipe=\"%.*s\"} %.0f\n",
				      s[i].queue, LD_NAME_MAX - 1, m->name, m->delay_sum_s, s[i].queue,
				      LD_NAME_MAX - 1, m->name, cum);
		}
	}
}

static uint32_t nuser_of(const struct ld_metric_tables *t)
{
	if (!t)
		return 0;
	return t->nuser < LD_USER_METRICS_MAX ? t->nuser : LD_USER_METRICS_MAX;
}

/* Did a slot before (i, j) carry this name? Then its family is out already. */
static int user_name_seen(const struct ld_metrics_source *s, size_t i, uint32_t j,
			  const char *name)
{
	for (size_t pi = 0; pi <= i; pi++) {
		uint32_t lim = pi == i ? j : nuser_of(s[pi].t);

		for (uint32_t pj = 0; pj < lim; pj++)
			if (strncmp(s[pi].t->user[pj].name, name, LD_NAME_MAX) == 0)
				return 1;
	}
	return 0;
}

/* Policy metrics: each name's lines together, after one TYPE line. */
static void render_user(struct ld_buf *b, const struct ld_metrics_source *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < nuser_of(s[i].t); j++) {
			const struct ld_user_metric *u = &s[i].t->user[j];

			if (user_name_seen(s, i, j, u->name))
				continue;
			ld_buf_printf(b, "# TYPE %.*s %s\n", LD_NAME_MAX - 1, u->name,
				      u->kind == LD_METRIC_GAUGE ? "gauge" : "counter");
			for (size_t qi = i; qi < n; qi++) {
				for (uint32_t qj = qi == i ? j : 0; qj < nuser_of(s[qi].t); qj++) {
					const struct ld_user_metric *v = &s[qi].t->user[qj];

					if (strncmp(v->name, u->name, LD_NAME_MAX) != 0)
						continue;
					ld_buf_printf(b, "%.*s{queue=\"%u\"%s%.*s} ", LD_NAME_MAX - 1,
						      v->name, s[qi].queue, v->labels[0] ? "," : "",
						      LD_LABELS_MAX - 1, v->labels);
					print_double(b, v->value);
					ld_buf_printf(b, "\n");
				}
			}
		}
	}
}

void ld_metrics_render(struct ld_buf *out, const struct ld_metrics_source *src, size_t n)
{
	render_core(out, src, n);
	render_pipes(out, src, n);
	render_user(out, src, n);
}

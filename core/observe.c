// SPDX-License-Identifier: MIT
/* observe.c - a queue's metrics endpoint, record and report (observe.h). */
#include "observe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "metrics_http.h"
#include "metrics_render.h"
#include "record_pcapng.h"
#include "report_html.h"

#define OBS_REPORT_INTERVAL_NS 1000000000ull   /* one report sample per second */

enum { HOOK_LOCAL_IN = 1, HOOK_FORWARD = 2 };   /* NF_INET_* */

struct ld_obs {
	struct ld_obs_cfg cfg;
	uint16_t queue;
	uint32_t default_verdict;
	const struct ld_counters *c;
	struct ld_metric_tables *t;       /* mmap'd MAP_SHARED (cfg.tables or our own) */
	struct ld_metrics_http *http;
	struct ld_record *rec;
	struct ld_report *rep;
	int64_t real_minus_mono;          /* live: packet clock to wall clock */
	struct ld_metrics_source *more;   /* issue 16: the other queues of --workers N */
	size_t nmore;
};

static void obs_render(void *ctx, struct ld_buf *out)
{
	struct ld_obs *o = ctx;
	struct ld_kernel_counters k;
	struct ld_metrics_source src = {
		.queue = o->queue, .default_verdict = o->default_verdict, .c = o->c, .k = &k,
		.t = o->t, .now_ns = ld_now_ns(),
	};

	if (ld_kernel_counters_read(o->queue, &k) < 0)
		k.valid = 0;
	if (o->rec)
		ld_record_stats(o->rec, &src.record_written, &src.record_dropped);
	if (!o->nmore) {
		ld_metrics_render(out, &src, 1);
		return;
	}
	/* issue 16: every queue of --workers N, each with its own label */
	struct ld_kernel_counters ks[o->nmore];

	o->more[0] = src;
	for (size_t i = 1; i <= o->nmore; i++) {
		o->more[i].k = &ks[i - 1];
		o->more[i].now_ns = src.now_ns;
		if (ld_kernel_counters_read(o->more[i].queue, &ks[i - 1]) < 0)
			ks[i - 1].valid = 0;
	}
	ld_metrics_render(out, o->more, o->nmore + 1);
}

int ld_obs_add_queue(struct ld_obs *o, uint16_t queue, const struct ld_counters *c,
		     const struct ld_metric_tables *t)
{
	struct ld_metrics_source *m = realloc(o->more, (o->nmore + 2) * sizeof(*m));

	if (!m)
		return -1;
	o->more = m;
	o->nmore++;
	m[o->nmore] = (struct ld_metrics_source){ .queue = queue,
						  .default_verdict = o->default_verdict,
						  .c = c, .t = t };
	return 0;
}

struct ld_obs *ld_obs_new(const struct ld_obs_cfg *cfg, uint16_t queue, uint32_t default_verdict,
			  const struct ld_counters *c, char *err, size_t errlen)
{
	struct ld_obs *o = calloc(1, sizeof(*o));
	struct timespec mono, real;

	if (!o) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o->cfg = *cfg;
	o->queue = queue;
	o->default_verdict = default_verdict;
	o->c = c;
	/* shared, so that a supervisor forked later reads the same pages */
	o->t = cfg->tables ? cfg->tables :
	       mmap(NULL, sizeof(*o->t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (o->t == MAP_FAILED) {
		o->t = NULL;
		snprintf(err, errlen, "metrics table: %s", strerror(errno));
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	o->real_minus_mono = ((int64_t)real.tv_sec - (int64_t)mono.tv_sec) * 1000000000 +
			     (real.tv_nsec - mono.tv_nsec);
	if (cfg->worker) {
		o->rec = cfg->record;   /* the supervisor writes it; never closed here */
		return o;
	}
	if (cfg->metrics_addr) {
		o->http = ld_metrics_http_open(cfg->metrics_addr, obs_render, o, err, errlen);
		if (!o->http)
			goto fail;
	}
	if (cfg->record_path) {
		o->rec = ld_record_open(cfg->record_path, cfg->record_max, cfg->offline, err, errlen);
		if (!o->rec)
			goto fail;
	}
	if (cfg->report_path) {
		o->rep = ld_report_new(cfg->report_path, OBS_REPORT_INTERVAL_NS);
		if (!o->rep) {
			snprintf(err, errlen, "--report: out of memory");
			goto fail;
		}
	}
	return o;
fail:
	ld_metrics_http_close(o->http);
	ld_record_close(o->rec, NULL, NULL);
	if (o->t && !cfg->tables)
		munmap(o->t, sizeof(*o->t));
	free(o);
	return NULL;
}

struct ld_record *ld_obs_record(struct ld_obs *o)
{
	return o->rec;
}

struct ld_metric_tables *ld_obs_tables(struct ld_obs *o)
{
	return o->t;
}

int ld_obs_fd(const struct ld_obs *o)
{
	return o->http ? ld_metrics_http_fd(o->http) : -1;
}

void ld_obs_handle(struct ld_obs *o)
{
	if (o->http)
		ld_metrics_http_handle(o->http);
}

void ld_obs_record_one(struct ld_obs *o, const struct ld_packet *p, uint64_t ts_ns)
{
	struct ld_record_pkt rp = {
		.ts_ns = ts_ns, .data = p->data, .len = p->len, .wire_len = p->orig_len,
		.verdict = p->verdict, .hold_ns = (p->set & LD_SET_HOLD) ? p->hold_ns : 0,
		.modified = !!(p->set & LD_SET_MODIFIED),
		.inbound = p->hook <= HOOK_FORWARD ? 1 : 2,
	};

	if (!o->rec)
		return;
	if (rp.modified)
		rp.wire_len = p->len;
	ld_record_packet(o->rec, &rp);
}

void ld_obs_batch(struct ld_obs *o, const struct ld_packet *pkts, uint32_t n, uint64_t now_ns)
{
	if (o->rec)
		for (uint32_t i = 0; i < n; i++)
			ld_obs_record_one(o, &pkts[i], o->cfg.offline ? pkts[i].tstamp_ns :
					  (uint64_t)((int64_t)pkts[i].tstamp_ns + o->real_minus_mono));
	if (o->rep)
		ld_report_sample(o->rep, now_ns, o->c, o->default_verdict, o->t);
}

void ld_obs_tick(struct ld_obs *o, uint64_t now_ns)
{
	if (o->rep)
		ld_report_sample(o->rep, now_ns, o->c, o->default_verdict, o->t);
}

int ld_obs_timeout_ms(const struct ld_obs *o)
{
	return o->rep ? (int)(OBS_REPORT_INTERVAL_NS / 1000000) : -1;
}

void ld_obs_settle(struct ld_obs *o, uint64_t received)
{
	uint64_t have;

	if (!o->rec)
		return;
	have = ld_record_settled(o->rec);
	if (received > have)
		ld_record_missed(o->rec, received - have);
}

void ld_obs_recorded(const struct ld_obs *o, uint64_t *written, uint64_t *dropped)
{
	*written = *dropped = 0;
	if (o->rec)
		ld_record_stats(o->rec, written, dropped);
}

int ld_obs_free(struct ld_obs *o, uint64_t now_ns, const char *title)
{
	int bad = 0;

	if (!o)
		return 0;
	ld_metrics_http_close(o->http);
	if (o->rec && !o->cfg.worker) {
		uint64_t w = 0, d = 0;

		if (ld_record_close(o->rec, &w, &d) < 0)
			bad = 1;
		ld_log("--record %s: %llu packets written, %llu not recorded", o->cfg.record_path,
		       (unsigned long long)w, (unsigned long long)d);
	}
	if (o->rep) {
		if (ld_report_write(o->rep, now_ns, o->c, o->default_verdict, o->t, title) < 0)
			bad = 1;
		ld_report_free(o->rep);
	}
	if (o->t && !o->cfg.tables)
		munmap(o->t, sizeof(*o->t));
	free(o->more);
	free(o);
	return bad ? -1 : 0;
}

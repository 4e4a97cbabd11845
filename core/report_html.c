// SPDX-License-Identifier: MIT
/*
 * report_html.c - the --report page (report_html.h).
 *
 * A sample is the cumulative counters at one time; a chart shows the
 * difference between neighbours (packets per interval, drawn as per second).
 * Each polyline carries data-values: the per-interval counts, whose sum is
 * the counter's total (tests/integration/test_observe_report.sh adds them up).
 */
#include "report_html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_render.h"

enum { CH_W = 760, CH_H = 210, CH_L = 60, CH_B = 24, CH_T = 22 };

struct rp_sample {
	uint64_t t_ns;
	uint64_t received, out, dropped, held, pipe_lost;
	uint64_t v[LD_VERDICT_KINDS];
};

struct ld_report {
	char *path;
	uint64_t interval_ns, next_ns, t0_ns;
	int started;
	uint32_t n;
	struct rp_sample s[LD_REPORT_SAMPLES_MAX];
};

struct ld_report *ld_report_new(const char *path, uint64_t interval_ns)
{
	struct ld_report *r = calloc(1, sizeof(*r));

	if (!r || !(r->path = strdup(path))) {
		free(r);
		return NULL;
	}
	r->interval_ns = interval_ns ? interval_ns : 1000000000u;
	return r;
}

static double pipe_lost_sum(const struct ld_metric_tables *t)
{
	double sum = 0;

	for (uint32_t i = 0; t && i < t->npipes && i < LD_PIPES_MAX; i++)
		sum += t->pipes[i].lost;
	return sum;
}

static void take(struct ld_report *r, uint64_t now, const struct ld_counters *c, uint32_t dv,
		 const struct ld_metric_tables *t)
{
	struct rp_sample *s;

	if (r->n == LD_REPORT_SAMPLES_MAX) {
		/* a long run: keep every other sample, sample half as often */
		uint32_t keep = (r->n - 1) / 2 + 1;   /* sample 0 (all zero) and every other */

		for (uint32_t i = 1; i < keep; i++)
			r->s[i] = r->s[2 * i];
		r->n = keep;
		r->interval_ns *= 2;
	}
	s = &r->s[r->n++];
	s->t_ns = now;
	s->received = c->received;
	s->out = c->passed;
	s->dropped = c->dropped;
	s->held = c->held;
	s->pipe_lost = (uint64_t)pipe_lost_sum(t);
	ld_verdict_counts(c, dv, s->v);
}

void ld_report_sample(struct ld_report *r, uint64_t now_ns, const struct ld_counters *c,
		      uint32_t default_verdict, const struct ld_metric_tables *t)
{
	if (!r->started) {
		/* time 0 with all counters 0: the first interval counts from there */
		struct ld_counters zero = { 0 };

		r->started = 1;
		r->t0_ns = now_ns;
		take(r, now_ns, &zero, default_verdict, NULL);
		r->next_ns = now_ns + r->interval_ns;
		return;
	}
	if (now_ns < r->next_ns)
		return;
	take(r, now_ns, c, default_verdict, t);
	r->next_ns = now_ns + r->interval_ns;
}

/* HTML-escape @s into the file. */
static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

typedef uint64_t (*rp_get)(const struct rp_sample *s, int arg);

static uint64_t g_received(const struct rp_sample *s, int a) { (void)a; return s->received; }
static uint64_t g_out(const struct rp_sample *s, int a) { (void)a; return s->out; }
static uint64_t g_dropped(const struct rp_sample *s, int a) { (void)a; return s->dropped; }
static uint64_t g_pipe_lost(const struct rp_sample *s, int a) { (void)a; return s->pipe_lost; }
static uint64_t g_verdict(const struct rp_sample *s, int a) { return s->v[a]; }

struct rp_series {
	const char *name, *color;
	rp_get get;
	int arg;
};

static double rate_at(const struct ld_report *r, const struct rp_series *se, uint32_t i)
{
	double dt = (double)(r->s[i].t_ns - r->s[i - 1].t_ns) / 1e9;
	uint64_t a = se->get(&r->s[i - 1], se->arg), b = se->get(&r->s[i], se->arg);

	return dt > 0 && b >= a ? (double)(b - a) / dt : 0;
}

/* A line chart of per-second rates of @n series. */
static void chart(FILE *f, const struct ld_report *r, const char *id, const char *title,
		  const char *unit, const struct rp_series *se, int n)
{
	double max = 1, span = r->n > 1 ? (double)(r->s[r->n - 1].t_ns - r->s[0].t_ns) / 1e9 : 1;

	if (span <= 0)
		span = 1;
	for (int k = 0; k < n; k++)
		for (uint32_t i = 1; i < r->n; i++) {
			double v = rate_at(r, &se[k], i);

			if (v > max)
				max = v;
		}
	fprintf(f, "<section><h2>%s</h2>\n<svg id=\"%s\" class=\"chart\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" role=\"img\" data-max=\"%.3f\" data-span-s=\"%.3f\">\n", title,
		id, CH_W, CH_H, CH_W, CH_H, max, span);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>"
		"<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", CH_L, CH_T, CH_L,
		CH_H - CH_B, CH_L, CH_H - CH_B, CH_W - 10, CH_H - CH_B);
	for (int k = 0; k <= 4; k++) {
		double y = CH_T + (CH_H - CH_B - CH_T) * (1 - k / 4.0);

		fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%.4g</text>"
			"<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>\n", CH_L - 4,
			y + 4, max * k / 4, CH_L, y, CH_W - 10, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"tick\" text-anchor=\"middle\">%.4gs</text>\n",
			CH_L + (CH_W - 10 - CH_L) * k / 4.0, CH_H - 6, span * k / 4);
	}
	fprintf(f, "<text x=\"4\" y=\"%d\" class=\"tick\">%s</text>\n", CH_T - 10, unit);
	for (int k = 0; k < n; k++) {
		uint64_t total = se[k].get(&r->s[r->n - 1], se[k].arg) - se[k].get(&r->s[0], se[k].arg);

		fprintf(f, "<polyline class=\"series\" data-series=\"%s\" data-total=\"%" PRIu64
			"\" stroke=\"%s\" fill=\"none\" stroke-width=\"1.5\" data-values=\"", se[k].name,
			total, se[k].color);
		for (uint32_t i = 1; i < r->n; i++)
			fprintf(f, "%s%" PRIu64, i > 1 ? "," : "",
				se[k].get(&r->s[i], se[k].arg) - se[k].get(&r->s[i - 1], se[k].arg));
		/* steps: each interval's rate drawn flat across the interval */
		fputs("\" points=\"", f);
		for (uint32_t i = 1; i < r->n; i++) {
			double x0 = CH_L + (CH_W - 10 - CH_L) *
				    ((double)(r->s[i - 1].t_ns - r->s[0].t_ns) / 1e9) / span;
			double x1 = CH_L + (CH_W - 10 - CH_L) *
				    ((double)(r->s[i].t_ns - r->s[0].t_ns) / 1e9) / span;
			double y = CH_H - CH_B - (CH_H - CH_B - CH_T) * rate_at(r, &se[k], i) / max;

			fprintf(f, "%s%.1f,%.1f %.1f,%.1f", i > 1 ? " " : "", x0, y, x1, y);
		}
		fputs("\"/>\n", f);
	}
	fputs("</svg>\n<p class=\"legend\">", f);
	for (int k = 0; k < n; k++) {
		uint64_t total = se[k].get(&r->s[r->n - 1], se[k].arg) - se[k].get(&r->s[0], se[k].arg);

		fprintf(f, "<span style=\"color:%s\">&#9632;</span> %s: <b class=\"total\" "
			"data-series=\"%s\">%" PRIu64 "</b> &nbsp; ", se[k].color, se[k].name,
			se[k].name, total);
	}
	fputs("</p></section>\n", f);
}

/* Bars: packets out of each named pipe per added-delay bucket. */
static void delay_charts(FILE *f, const struct ld_metric_tables *t)
{
	fputs("<section><h2>Added delay per pipe</h2>\n", f);
	if (!t || t->npipes == 0)
		fputs("<p>No named pipe (shape.pipe{name = ...}) in this policy.</p>\n", f);
	for (uint32_t i = 0; t && i < t->npipes && i < LD_PIPES_MAX; i++) {
		const struct ld_pipe_metrics *m = &t->pipes[i];
		char name[LD_NAME_MAX];
		double max = 1, out = 0;
		int bw = (CH_W - CH_L - 10) / LD_DELAY_BUCKETS;

		snprintf(name, sizeof(name), "%s", m->name);
		for (int k = 0; k < LD_DELAY_BUCKETS; k++) {
			out += m->delay_count[k];
			if (m->delay_count[k] > max)
				max = m->delay_count[k];
		}
		fputs("<h3>pipe ", f);
		esc(f, name);
		fprintf(f, "</h3>\n<p>in <b class=\"pipe-packets\">%.0f</b>, lost <b class=\"pipe-lost\">"
			"%.0f</b>, delayed <b class=\"pipe-delayed\">%.0f</b>, out <b class=\"pipe-out\">"
			"%.0f</b>, mean added delay %.3f ms</p>\n", m->packets, m->lost, m->delayed, out,
			out > 0 ? m->delay_sum_s * 1e3 / out : 0.0);
		fprintf(f, "<svg class=\"delay\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
			"data-pipe=\"", CH_W, CH_H, CH_W, CH_H);
		esc(f, name);
		fprintf(f, "\" data-packets=\"%.0f\" data-lost=\"%.0f\" data-delayed=\"%.0f\" "
			"data-out=\"%.0f\">\n", m->packets, m->lost, m->delayed, out);
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", CH_L,
			CH_H - CH_B, CH_W - 10, CH_H - CH_B);
		for (int k = 0; k < LD_DELAY_BUCKETS; k++) {
			double h = (CH_H - CH_B - CH_T) * m->delay_count[k] / max;
			int x = CH_L + k * bw;
			char le[32];

			if (k == LD_DELAY_BUCKETS - 1)
				snprintf(le, sizeof(le), "+Inf");
			else
				snprintf(le, sizeof(le), "%g", t->delay_le_s[k]);
			fprintf(f, "<rect class=\"bucket\" x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
				"data-le=\"%s\" data-count=\"%.0f\"><title>&lt;= %s s: %.0f packets</title>"
				"</rect>\n", x + 2, CH_H - CH_B - h, bw - 4, h, le, m->delay_count[k], le,
				m->delay_count[k]);
			fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"tick small\" text-anchor=\"middle\">%s"
				"</text>\n", x + bw / 2, CH_H - 6, k == LD_DELAY_BUCKETS - 1 ? "more" : le);
		}
		fputs("</svg>\n<p class=\"legend\">bucket upper bounds in seconds</p>\n", f);
	}
	fputs("</section>\n", f);
}

int ld_report_write(struct ld_report *r, uint64_t now_ns, const struct ld_counters *c,
		    uint32_t default_verdict, const struct ld_metric_tables *t, const char *title)
{
	static const char *const colors[LD_VERDICT_KINDS] = {
		"#2a7", "#c33", "#a6c", "#36c", "#888", "#e90",
	};
	struct rp_series thr[2] = {
		{ "in", "#36c", g_received, 0 }, { "out", "#2a7", g_out, 0 },
	};
	struct rp_series loss[2] = {
		{ "dropped", "#c33", g_dropped, 0 }, { "pipe_lost", "#e90", g_pipe_lost, 0 },
	};
	struct rp_series ver[LD_VERDICT_KINDS];
	int nver = 0;
	FILE *f;

	if (!r->started)
		ld_report_sample(r, now_ns, c, default_verdict, t);
	take(r, now_ns > r->s[r->n - 1].t_ns ? now_ns : r->s[r->n - 1].t_ns + 1, c,
	     default_verdict, t);
	for (int k = 0; k < LD_VERDICT_KINDS; k++)
		if (r->s[r->n - 1].v[k] || k < 2)
			ver[nver++] = (struct rp_series){ ld_verdict_kind_names[k], colors[k],
							  g_verdict, k };
	f = fopen(r->path, "we");
	if (!f) {
		ld_log("--report %s: %s", r->path, strerror(errno));
		return -1;
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'\">\n<title>luadivert report</title>\n<style>\n"
	      "body{font:14px sans-serif;margin:2em;color:#222}h2{font-size:16px;margin-top:2em}\n"
	      "h3{font-size:14px}.axis{stroke:#444}.grid{stroke:#ddd}.tick{font-size:10px;fill:#555}.small{font-size:8px}\n"
	      ".bucket{fill:#36c}table{border-collapse:collapse}td,th{padding:2px 10px;"
	      "border-bottom:1px solid #ddd;text-align:right}th{text-align:left}\n"
	      "</style></head><body>\n<h1>luadivert report</h1>\n<p>", f);
	esc(f, title);
	fprintf(f, " &mdash; %.3f s, samples every %.3f s</p>\n",
		(double)(r->s[r->n - 1].t_ns - r->s[0].t_ns) / 1e9, (double)r->interval_ns / 1e9);
	fprintf(f, "<table id=\"totals\">\n"
		"<tr><th>received</th><td id=\"total-received\">%" PRIu64 "</td></tr>\n"
		"<tr><th>passed (all accepts)</th><td id=\"total-passed\">%" PRIu64 "</td></tr>\n"
		"<tr><th>dropped</th><td id=\"total-dropped\">%" PRIu64 "</td></tr>\n"
		"<tr><th>held (shaped)</th><td id=\"total-held\">%" PRIu64 "</td></tr>\n"
		"<tr><th>modified</th><td id=\"total-modified\">%" PRIu64 "</td></tr>\n"
		"<tr><th>handler errors</th><td id=\"total-errors\">%" PRIu64 "</td></tr>\n"
		"</table>\n", c->received, c->passed, c->dropped, c->held, c->modified, c->errors);
	chart(f, r, "throughput", "Throughput in and out", "packets/s", thr, 2);
	chart(f, r, "verdicts", "Verdicts over time", "verdicts/s", ver, nver);
	chart(f, r, "loss", "Loss over time", "packets/s", loss, 2);
	delay_charts(f, t);
	fputs("</body></html>\n", f);
	if (ferror(f) | fclose(f)) {
		ld_log("--report %s: write error: %s", r->path, strerror(errno));
		return -1;
	}
	return 0;
}

void ld_report_free(struct ld_report *r)
{
	if (!r)
		return;
	free(r->path);
	free(r);
}

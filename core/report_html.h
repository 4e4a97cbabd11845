/* SPDX-License-Identifier: MIT */
/*
 * report_html.h - `--report FILE.html`: one self-contained page (inline SVG
 * and CSS, no script, no external URL) with what a run did over time:
 * throughput in and out, verdicts, loss, and the distribution of the delay
 * each named pipe added. Samples are taken from the counters as time goes
 * on (live: the monotonic clock; replay: the capture's clock); the page is
 * written once, at the end. Every number a chart draws is also in its DOM
 * (data-* attributes), so a test or a script can read them back.
 */
#ifndef LD_REPORT_HTML_H
#define LD_REPORT_HTML_H

#include <stdint.h>

#include "counters.h"
#include "ld_abi.h"

enum {
	LD_REPORT_SAMPLES_MAX = 1024,   /* beyond, pairs of samples merge and the interval doubles */
};

struct ld_report;

/**
 * ld_report_new() - start sampling for a report
 * @path: the HTML file written by ld_report_write()
 * @interval_ns: time between samples (doubles when the run is long)
 *
 * Return: the report, or NULL when out of memory.
 */
struct ld_report *ld_report_new(const char *path, uint64_t interval_ns);

/**
 * ld_report_sample() - take a sample if one is due at @now_ns (cheap otherwise)
 * @r: report
 * @now_ns: clock
 * @c: counters
 * @default_verdict: LD_PASS or LD_DROP
 * @t: pipe metrics, may be NULL
 */
void ld_report_sample(struct ld_report *r, uint64_t now_ns, const struct ld_counters *c,
		      uint32_t default_verdict, const struct ld_metric_tables *t);

/**
 * ld_report_write() - take a last sample and write the page
 * @r: report
 * @now_ns: clock
 * @c: counters
 * @default_verdict: LD_PASS or LD_DROP
 * @t: pipe metrics, may be NULL
 * @title: what ran (policy, queue or capture)
 *
 * Return: 0, or -1 with the reason logged.
 */
int ld_report_write(struct ld_report *r, uint64_t now_ns, const struct ld_counters *c,
		    uint32_t default_verdict, const struct ld_metric_tables *t, const char *title);

/**
 * ld_report_free() - free the samples
 * @r: report, may be NULL
 */
void ld_report_free(struct ld_report *r);

#endif /* LD_REPORT_HTML_H */

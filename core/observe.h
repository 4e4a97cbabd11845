/* SPDX-License-Identifier: MIT */
/*
 * observe.h - what a queue shows of itself (issue 13): the /metrics
 * endpoint, the --record file and the --report page, behind one small
 * interface the event loop calls. Each part is its own module
 * (metrics_http, metrics_render, record_pcapng, report_html); this file only
 * wires them to a worker's counters and to the metrics table its Lua state
 * writes (mmap'd shared, so a supervisor process can read it too).
 */
#ifndef LD_OBSERVE_H
#define LD_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "ld_abi.h"
#include "record_pcapng.h"

struct ld_obs_cfg {
	const char *metrics_addr;   /* --metrics ADDR, or NULL */
	const char *record_path;    /* --record FILE.pcapng, or NULL */
	uint64_t record_max;        /* --record-max bytes, 0 = no rotation */
	const char *report_path;    /* --report FILE.html, or NULL */
	int offline;                /* replay: the clock is the capture's; record blocks */
	/*
	 * With worker processes (docs/process.md) the supervisor's observer
	 * serves /metrics, owns the record's files and writes the report,
	 * reading the shared counters and metrics table; a worker's observer
	 * (worker = 1) only copies its packets into the supervisor's record
	 * through the ring both map. The sandboxed worker opens no file and
	 * accepts no connection.
	 */
	int worker;                        /* 1: record into @record, nothing else */
	struct ld_record *record;          /* with worker: the supervisor's, or NULL */
	struct ld_metric_tables *tables;   /* mapped shared by the caller, or NULL: own */
};

struct ld_obs;

/**
 * ld_obs_new() - set up what @cfg asks for
 * @cfg: configuration (strings must outlive the observer)
 * @queue: queue number (labels)
 * @default_verdict: LD_PASS or LD_DROP
 * @c: the worker's counters, read at scrape and sample time
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: the observer (also when nothing is asked: it then only holds the
 * metrics table), or NULL.
 */
struct ld_obs *ld_obs_new(const struct ld_obs_cfg *cfg, uint16_t queue, uint32_t default_verdict,
			  const struct ld_counters *c, char *err, size_t errlen);

/**
 * ld_obs_record() - the --record writer, for a worker's ld_obs_cfg.record
 * @o: observer
 *
 * Return: the recorder, or NULL without --record.
 */
struct ld_record *ld_obs_record(struct ld_obs *o);

/**
 * ld_obs_tables() - the metrics table to hand to Lua (struct ld_batch.metrics)
 * @o: observer
 *
 * Return: the table.
 */
struct ld_metric_tables *ld_obs_tables(struct ld_obs *o);

/**
 * ld_obs_add_queue() - issue 16 (--workers N): one more queue for /metrics,
 * rendered after the first with its own queue label
 * @o: observer (the supervisor's)
 * @queue: the queue number
 * @c: that queue's counters (shared with its worker)
 * @t: that queue's metrics table (shared with its worker), or NULL
 *
 * --record and --report still cover the first queue only (run refuses
 * them with more than one worker).
 *
 * Return: 0, or -1 (out of memory).
 */
int ld_obs_add_queue(struct ld_obs *o, uint16_t queue, const struct ld_counters *c,
		     const struct ld_metric_tables *t);

/**
 * ld_obs_fd() - descriptor to add to the event loop (EPOLLIN)
 * @o: observer
 *
 * Return: the metrics server's descriptor, or -1 without --metrics.
 */
int ld_obs_fd(const struct ld_obs *o);

/**
 * ld_obs_handle() - serve /metrics (call when ld_obs_fd() is readable)
 * @o: observer
 */
void ld_obs_handle(struct ld_obs *o);

/**
 * ld_obs_batch() - after a batch's verdicts: record its packets, sample for the report
 * @o: observer
 * @pkts: the batch (verdict, set and hold_ns as decided)
 * @n: packets in it
 * @now_ns: clock (monotonic live, capture time offline)
 */
void ld_obs_batch(struct ld_obs *o, const struct ld_packet *pkts, uint32_t n, uint64_t now_ns);

/**
 * ld_obs_record_one() - record one decided packet (replay, which decides record by record)
 * @o: observer
 * @p: the packet
 * @ts_ns: its timestamp (capture clock)
 */
void ld_obs_record_one(struct ld_obs *o, const struct ld_packet *p, uint64_t ts_ns);

/**
 * ld_obs_tick() - sample for the report when one is due
 * @o: observer
 * @now_ns: clock
 */
void ld_obs_tick(struct ld_obs *o, uint64_t now_ns);

/**
 * ld_obs_timeout_ms() - how long the event loop may sleep (the next report sample)
 * @o: observer
 *
 * Return: milliseconds, or -1 (no limit).
 */
int ld_obs_timeout_ms(const struct ld_obs *o);

/**
 * ld_obs_settle() - count as not recorded the packets received that never
 * reached the record: a batch a killed worker had in hand (it records after
 * the verdicts), packets the queue's close swept; so that written + not
 * recorded = received
 * @o: observer (the supervisor's)
 * @received: the queue's received counter now
 */
void ld_obs_settle(struct ld_obs *o, uint64_t received);

/**
 * ld_obs_recorded() - --record's counts so far
 * @o: observer
 * @written: packets written
 * @dropped: packets left out
 */
void ld_obs_recorded(const struct ld_obs *o, uint64_t *written, uint64_t *dropped);

/**
 * ld_obs_free() - close the server, flush the record, write the report
 * @o: observer, may be NULL
 * @now_ns: clock at the end
 * @title: for the report
 *
 * Return: 0, or -1 when the record or the report could not be written.
 */
int ld_obs_free(struct ld_obs *o, uint64_t now_ns, const char *title);

#endif /* LD_OBSERVE_H */

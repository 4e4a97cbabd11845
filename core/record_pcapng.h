/* SPDX-License-Identifier: MIT */
/*
 * record_pcapng.h - `--record FILE.pcapng`: every diverted packet once, as
 * the policy left it, with a comment per packet:
 *
 *     verdict=pass hold_ms=20.000 modified=no
 *
 * The packet path only copies the packet into a bounded ring buffer (no
 * lock, no syscall); a writer thread drains it to the file. A packet that
 * does not fit (the disk is slower than the traffic) is counted in
 * ->dropped, never waited for. With @max_bytes the file rotates: FILE,
 * FILE.1, FILE.2, ... each a complete pcapng file (tcpdump -r reads each).
 * Offline (replay) the writer may block instead: nothing is lost there.
 */
#ifndef LD_RECORD_PCAPNG_H
#define LD_RECORD_PCAPNG_H

#include <stddef.h>
#include <stdint.h>

enum {
	LD_RECORD_BUFFER_DEFAULT = 8 << 20,   /* bytes of packets waiting for the disk */
	LD_RECORD_MIN_SIZE = 1 << 16,         /* smallest --record-max */
};

struct ld_record;

/* One packet's decision, as the comment shows it. */
struct ld_record_pkt {
	uint64_t ts_ns;        /* wall clock (ns since 1970) */
	const uint8_t *data;   /* the IP packet as the policy left it */
	uint32_t len;          /* bytes at data */
	uint32_t wire_len;     /* length on the wire (>= len) */
	uint32_t verdict;      /* enum ld_verdict, queue number in bits 16..31 */
	uint64_t hold_ns;      /* hold time, 0 when not held */
	uint8_t modified;      /* bytes changed */
	uint8_t inbound;       /* 1 inbound, 2 outbound, 0 unknown (pcapng epb_flags) */
};

/**
 * ld_record_open() - create @path and start the writer
 * @path: the file (FILE.1, FILE.2, ... when it rotates)
 * @max_bytes: rotate before a file grows beyond this, 0 = never
 * @blocking: 1: wait for room instead of dropping (offline use)
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: the recorder, or NULL.
 */
struct ld_record *ld_record_open(const char *path, uint64_t max_bytes, int blocking,
				 char *err, size_t errlen);

/**
 * ld_record_packet() - queue one packet for the file; never blocks unless @blocking
 * @r: recorder
 * @p: the packet and its decision (the bytes are copied)
 *
 * A process forked after ld_record_open() may call this (the ring is
 * mapped shared; the writer stays in the opener), one process at a time.
 */
void ld_record_packet(struct ld_record *r, const struct ld_record_pkt *p);

/**
 * ld_record_pause() - stop the writer thread at a point where it holds no
 * lock (of malloc, stdio or a sanitizer), before the process forks: a
 * child inherits locks held by other threads at the fork, and would wait
 * for them forever
 * @r: recorder, may be NULL
 *
 * Return: 0, or -1 when the writer did not pause within 2 s (a write that
 * hangs); the caller forks anyway.
 */
int ld_record_pause(struct ld_record *r);

/**
 * ld_record_resume() - let the writer go on after ld_record_pause()
 * @r: recorder, may be NULL
 */
void ld_record_resume(struct ld_record *r);

/**
 * ld_record_settled() - once no process produces any more (the worker died
 * or stopped): wait until the writer drained the ring (at most 2 s), then
 * the packets written plus those left out
 * @r: recorder
 *
 * A packet a killed producer was copying is not in the ring (the head had
 * not moved), so it is in neither count.
 *
 * Return: the count.
 */
uint64_t ld_record_settled(struct ld_record *r);

/**
 * ld_record_missed() - count packets that were diverted but never reached
 * ld_record_packet() (a worker killed with a batch in hand)
 * @r: recorder
 * @n: how many
 */
void ld_record_missed(struct ld_record *r, uint64_t n);

/**
 * ld_record_stats() - packets written so far and packets left out
 * @r: recorder
 * @written: receives the count written to files
 * @dropped: receives the count that did not fit (or came after a write error)
 */
void ld_record_stats(const struct ld_record *r, uint64_t *written, uint64_t *dropped);

/**
 * ld_record_close() - write what is buffered, stop the writer, close the file
 * @r: recorder, may be NULL
 * @written: receives the final count written (may be NULL)
 * @dropped: receives the final count left out (may be NULL)
 *
 * Return: 0, or -1 when a write failed (the reason was logged).
 */
int ld_record_close(struct ld_record *r, uint64_t *written, uint64_t *dropped);

/**
 * ld_record_comment() - the comment text of one decision
 * @buf: receives it
 * @len: size of @buf
 * @verdict: enum ld_verdict
 * @hold_ns: hold time
 * @modified: bytes changed
 *
 * Return: the length written (snprintf's).
 */
int ld_record_comment(char *buf, size_t len, uint32_t verdict, uint64_t hold_ns, int modified);

#endif /* LD_RECORD_PCAPNG_H */

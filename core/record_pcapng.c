// SPDX-License-Identifier: MIT
/*
 * record_pcapng.c - the --record writer (record_pcapng.h).
 *
 *   packet path ──copy──► ring (bytes, single producer/single consumer) ──► writer thread ──► FILE
 *                         full? count it, go on                             rotates at max_bytes
 *
 * The ring and its indices are one MAP_SHARED mapping, so that with worker
 * processes (docs/process.md) the writer thread and the file stay in the
 * supervisor, which may create files, while the serving worker, which may
 * not (docs/sandbox.md), copies packets in through the mapping it inherited.
 * A worker killed mid-copy leaves nothing half-written behind: head moves
 * only after the entry is complete. One worker serves at a time, so there
 * is still one producer.
 *
 * pcapng (draft-ietf-opsawg-pcapng): a Section Header Block, an Interface
 * Description Block (LINKTYPE_RAW: packets start at the IP header; if_tsresol
 * 9: ns timestamps), then one Enhanced Packet Block per packet with the
 * opt_comment and epb_flags (direction) options. Little-endian host assumed
 * for the file's byte order; the byte-order magic tells readers.
 */
#include "record_pcapng.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ld_abi.h"
#include "log.h"

enum {
	PN_SHB = 0x0a0d0d0a, PN_IDB = 1, PN_EPB = 6, PN_BOM = 0x1a2b3c4d,
	PN_OPT_END = 0, PN_OPT_COMMENT = 1, PN_OPT_EPB_FLAGS = 2, PN_OPT_TSRESOL = 9,
	PN_OPT_USERAPPL = 4, PN_OPT_IFNAME = 2,
	PN_LINKTYPE_RAW = 101,
	PN_COMMENT_MAX = 96,
	PN_IDLE_NS = 2000000,      /* the writer looks for work every 2 ms when idle */
	PN_PAD = 0xffffffffu,      /* ring entry marker: skip to the start of the ring */
	PN_FILE_BUF = 1 << 20,     /* stdio buffer of the file: few, large writes */
	PN_BLOCK_MAX = 32 + LD_PACKET_MAX + 4 + 4 + PN_COMMENT_MAX + 4 + 8 + 4 + 4,
};

/* A packet in the ring: this header, then len bytes, padded to 8. */
struct pn_entry {
	uint32_t len;            /* PN_PAD: wrap */
	uint32_t wire_len;
	uint64_t ts_ns;
	uint64_t hold_ns;
	uint32_t verdict;
	uint8_t modified, inbound, pad[2];
};

/* What the packet path and the writer share: mapped MAP_SHARED, see above. */
struct pn_shared {
	_Atomic size_t head;     /* written by the packet path */
	_Atomic size_t tail;     /* written by the writer */
	_Atomic int broken;      /* a write failed: record no more */
	_Atomic uint64_t written;
	_Atomic uint64_t dropped;
	uint8_t ring[];          /* size bytes */
};

struct ld_record {
	char *path;
	uint64_t max_bytes;
	int blocking;
	FILE *f;
	unsigned nfile;          /* files opened so far */
	uint64_t file_bytes;
	struct pn_shared *sh;
	uint8_t *ring;           /* sh->ring */
	size_t size;
	_Atomic int stop;        /* the writer's own process only */
	_Atomic int pause_req;   /* ld_record_pause(): wait at the loop's top */
	_Atomic int paused;      /* the writer waits there, holding no lock */
	pthread_t thread;
	int thread_started;
	uint8_t *blk;            /* the writer's block being assembled (PN_BLOCK_MAX) */
};

static size_t pn_align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static size_t pn_shared_bytes(void)
{
	return sizeof(struct pn_shared) + LD_RECORD_BUFFER_DEFAULT;
}

int ld_record_comment(char *buf, size_t len, uint32_t verdict, uint64_t hold_ns, int modified)
{
	char v[24];

	switch (verdict & 0xff) {
	case LD_DROP: snprintf(v, sizeof(v), "drop"); break;
	case LD_PASS: snprintf(v, sizeof(v), "pass"); break;
	case LD_REPEAT: snprintf(v, sizeof(v), "repeat"); break;
	case LD_OFFLOAD: snprintf(v, sizeof(v), "offload"); break;
	case LD_QUEUE: snprintf(v, sizeof(v), "queue:%u", verdict >> 16); break;
	default: snprintf(v, sizeof(v), "verdict:%u", verdict); break;
	}
	return snprintf(buf, len, "verdict=%s hold_ms=%.3f modified=%s", v, (double)hold_ns / 1e6,
			modified ? "yes" : "no");
}

/* Write one block: type, total length, @body (padded to 4), total length. */
static int pn_block(struct ld_record *r, uint32_t type, const void *body, size_t blen,
		    const void *body2, size_t b2len)
{
	static const uint8_t zeros[4];
	uint32_t total = (uint32_t)(12 + blen + b2len + ((4 - ((blen + b2len) & 3)) & 3));
	size_t padn = (4 - ((blen + b2len) & 3)) & 3;

	if (fwrite(&type, 4, 1, r->f) != 1 || fwrite(&total, 4, 1, r->f) != 1 ||
	    (blen && fwrite(body, blen, 1, r->f) != 1) ||
	    (b2len && fwrite(body2, b2len, 1, r->f) != 1) ||
	    (padn && fwrite(zeros, padn, 1, r->f) != 1) || fwrite(&total, 4, 1, r->f) != 1)
		return -1;
	r->file_bytes += total;
	return 0;
}

/* Append option @code with @len bytes of @val (padded) to @buf at *@off. */
static void pn_opt(uint8_t *buf, size_t *off, uint16_t code, const void *val, uint16_t len)
{
	memcpy(buf + *off, &code, 2);
	memcpy(buf + *off + 2, &len, 2);
	if (len)
		memcpy(buf + *off + 4, val, len);
	memset(buf + *off + 4 + len, 0, (4 - (len & 3)) & 3);
	*off += 4 + len + ((4 - (len & 3)) & 3);
}

static int pn_open_file(struct ld_record *r)
{
	char name[4096];
	uint8_t shb[64], idb[64];
	size_t o = 0;
	uint32_t bom = PN_BOM, snap = 0;
	uint16_t major = 1, minor = 0, lt = PN_LINKTYPE_RAW, res = 0;
	int64_t seclen = -1;
	uint8_t tsresol = 9;
	static const char appl[] = "luadivert";

	if (r->nfile == 0)
		snprintf(name, sizeof(name), "%s", r->path);
	else
		snprintf(name, sizeof(name), "%s.%u", r->path, r->nfile);
	r->f = fopen(name, "we");
	if (!r->f) {
		ld_log("--record %s: %s", name, strerror(errno));
		return -1;
	}
	setvbuf(r->f, NULL, _IOFBF, PN_FILE_BUF);
	r->nfile++;
	r->file_bytes = 0;
	memcpy(shb, &bom, 4);
	memcpy(shb + 4, &major, 2);
	memcpy(shb + 6, &minor, 2);
	memcpy(shb + 8, &seclen, 8);
	o = 16;
	pn_opt(shb, &o, PN_OPT_USERAPPL, appl, sizeof(appl) - 1);
	pn_opt(shb, &o, PN_OPT_END, NULL, 0);
	memcpy(idb, &lt, 2);
	memcpy(idb + 2, &res, 2);
	memcpy(idb + 4, &snap, 4);
	{
		size_t io = 8;

		pn_opt(idb, &io, PN_OPT_TSRESOL, &tsresol, 1);
		pn_opt(idb, &io, PN_OPT_END, NULL, 0);
		if (pn_block(r, PN_SHB, shb, o, NULL, 0) < 0 ||
		    pn_block(r, PN_IDB, idb, io, NULL, 0) < 0) {
			ld_log("--record %s: %s", name, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* One Enhanced Packet Block, assembled in r->blk and written with one fwrite. */
static int pn_write_packet(struct ld_record *r, const struct pn_entry *e, const uint8_t *data)
{
	char comment[PN_COMMENT_MAX];
	uint8_t *p = r->blk;
	size_t o = 0, padn = (4 - (e->len & 3)) & 3;
	uint32_t ifid = 0, hi = (uint32_t)(e->ts_ns >> 32), lo = (uint32_t)e->ts_ns;
	uint32_t flags = e->inbound, total, type = PN_EPB;
	int clen = ld_record_comment(comment, sizeof(comment), e->verdict, e->hold_ns, e->modified);

	if (clen < 0 || clen >= (int)sizeof(comment))
		clen = (int)strlen(comment);
	/* type, length, interface, timestamp, captured and wire length, data, options, length */
	memcpy(p + 8, &ifid, 4);
	memcpy(p + 12, &hi, 4);
	memcpy(p + 16, &lo, 4);
	memcpy(p + 20, &e->len, 4);
	memcpy(p + 24, &e->wire_len, 4);
	memcpy(p + 28, data, e->len);
	memset(p + 28 + e->len, 0, padn);
	o = 28 + e->len + padn;
	pn_opt(p, &o, PN_OPT_COMMENT, comment, (uint16_t)clen);
	if (flags)
		pn_opt(p, &o, PN_OPT_EPB_FLAGS, &flags, 4);
	pn_opt(p, &o, PN_OPT_END, NULL, 0);
	total = (uint32_t)(o + 4);
	memcpy(p, &type, 4);
	memcpy(p + 4, &total, 4);
	memcpy(p + o, &total, 4);
	if (r->max_bytes && r->file_bytes + total > r->max_bytes && r->file_bytes > 256) {
		if (fclose(r->f) != 0) {
			r->f = NULL;
			ld_log("--record: closing %s: %s", r->path, strerror(errno));
			return -1;
		}
		r->f = NULL;
		if (pn_open_file(r) < 0)
			return -1;
	}
	if (fwrite(p, total, 1, r->f) != 1) {
		ld_log("--record %s: write: %s (recording stops)", r->path, strerror(errno));
		return -1;
	}
	r->file_bytes += total;
	return 0;
}

/* Write everything between tail and head; return whether there was any. */
static int pn_drain(struct ld_record *r)
{
	size_t tail = atomic_load_explicit(&r->sh->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&r->sh->head, memory_order_acquire);
	int any = tail != head;

	while (tail != head) {
		size_t off = tail % r->size;
		struct pn_entry e;

		if (r->size - off < sizeof(e)) {
			tail += r->size - off;
			continue;
		}
		memcpy(&e, r->ring + off, sizeof(e));
		if (e.len == PN_PAD) {
			tail += r->size - off;
			continue;
		}
		if (!atomic_load(&r->sh->broken)) {
			if (pn_write_packet(r, &e, r->ring + off + sizeof(e)) < 0)
				atomic_store(&r->sh->broken, 1);
			else
				atomic_fetch_add_explicit(&r->sh->written, 1, memory_order_relaxed);
		}
		if (atomic_load(&r->sh->broken))
			atomic_fetch_add_explicit(&r->sh->dropped, 1, memory_order_relaxed);
		tail += pn_align8(sizeof(e) + e.len);
		atomic_store_explicit(&r->sh->tail, tail, memory_order_release);
	}
	atomic_store_explicit(&r->sh->tail, tail, memory_order_release);
	if (any && r->f && fflush(r->f) != 0 && !atomic_load(&r->sh->broken)) {
		ld_log("--record %s: write: %s (recording stops)", r->path, strerror(errno));
		atomic_store(&r->sh->broken, 1);
	}
	return any;
}

static void *pn_writer(void *arg)
{
	struct ld_record *r = arg;
	const struct timespec idle = { 0, PN_IDLE_NS };

	for (;;) {
		int stop = atomic_load(&r->stop);

		if (atomic_load(&r->pause_req)) {
			const struct timespec t = { 0, 100000 };

			atomic_store(&r->paused, 1);
			while (atomic_load(&r->pause_req))
				nanosleep(&t, NULL);
			atomic_store(&r->paused, 0);
			continue;
		}
		if (!pn_drain(r)) {
			if (stop)
				break;
			nanosleep(&idle, NULL);
		}
	}
	return NULL;
}

struct ld_record *ld_record_open(const char *path, uint64_t max_bytes, int blocking,
				 char *err, size_t errlen)
{
	struct ld_record *r = calloc(1, sizeof(*r));
	int rc;

	if (!r || !(r->path = strdup(path)) || !(r->blk = malloc(PN_BLOCK_MAX))) {
		snprintf(err, errlen, "--record: out of memory");
		goto fail;
	}
	r->sh = mmap(NULL, pn_shared_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (r->sh == MAP_FAILED) {
		r->sh = NULL;
		snprintf(err, errlen, "--record: ring: %s", strerror(errno));
		goto fail;
	}
	r->ring = r->sh->ring;
	r->size = LD_RECORD_BUFFER_DEFAULT;
	r->max_bytes = max_bytes;
	r->blocking = blocking;
	if (pn_open_file(r) < 0) {
		snprintf(err, errlen, "--record %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fflush(r->f) != 0) {
		snprintf(err, errlen, "--record %s: %s", path, strerror(errno));
		goto fail;
	}
	rc = pthread_create(&r->thread, NULL, pn_writer, r);
	if (rc) {
		snprintf(err, errlen, "--record: writer thread: %s", strerror(rc));
		goto fail;
	}
	r->thread_started = 1;
	return r;
fail:
	if (r && r->f)
		fclose(r->f);
	if (r) {
		if (r->sh)
			munmap(r->sh, pn_shared_bytes());
		free(r->path);
		free(r->blk);
	}
	free(r);
	return NULL;
}

void ld_record_packet(struct ld_record *r, const struct ld_record_pkt *p)
{
	struct pn_entry e = {
		.len = p->len, .wire_len = p->wire_len < p->len ? p->len : p->wire_len,
		.ts_ns = p->ts_ns, .hold_ns = p->hold_ns, .verdict = p->verdict,
		.modified = p->modified, .inbound = p->inbound,
	};
	size_t need = pn_align8(sizeof(e) + p->len);
	size_t head = atomic_load_explicit(&r->sh->head, memory_order_relaxed);

	if (atomic_load_explicit(&r->sh->broken, memory_order_relaxed) || need > r->size / 2) {
		atomic_fetch_add_explicit(&r->sh->dropped, 1, memory_order_relaxed);
		return;
	}
	for (;;) {
		size_t tail = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
		size_t off = head % r->size, skip = r->size - off < need ? r->size - off : 0;

		if (r->size - (head - tail) >= skip + need) {
			if (skip) {
				if (skip >= sizeof(e)) {
					uint32_t pad = PN_PAD;

					memcpy(r->ring + off, &pad, sizeof(pad));
				}
				head += skip;
				off = 0;
			}
			memcpy(r->ring + off, &e, sizeof(e));
			if (p->len)
				memcpy(r->ring + off + sizeof(e), p->data, p->len);
			atomic_store_explicit(&r->sh->head, head + need, memory_order_release);
			return;
		}
		if (!r->blocking) {
			/* the disk is behind: count the packet, never wait on the packet path */
			atomic_fetch_add_explicit(&r->sh->dropped, 1, memory_order_relaxed);
			return;
		}
		{
			const struct timespec t = { 0, 100000 };

			nanosleep(&t, NULL);
		}
	}
}

int ld_record_pause(struct ld_record *r)
{
	const struct timespec t = { 0, 50000 };

	if (!r || !r->thread_started)
		return 0;
	atomic_store(&r->pause_req, 1);
	/* a drain pass is short: 2 s means the disk hangs; fork anyway */
	for (int i = 0; i < 40000 && !atomic_load(&r->paused); i++)
		nanosleep(&t, NULL);
	return atomic_load(&r->paused) ? 0 : -1;
}

void ld_record_resume(struct ld_record *r)
{
	if (r)
		atomic_store(&r->pause_req, 0);
}

uint64_t ld_record_settled(struct ld_record *r)
{
	const struct timespec t = { 0, 100000 };

	/* no producer is left: what it committed drains within a few ms */
	for (int i = 0; i < 20000 && r->thread_started && !atomic_load(&r->stop) &&
			atomic_load(&r->sh->tail) != atomic_load(&r->sh->head); i++)
		nanosleep(&t, NULL);
	return atomic_load(&r->sh->written) + atomic_load(&r->sh->dropped);
}

void ld_record_missed(struct ld_record *r, uint64_t n)
{
	atomic_fetch_add_explicit(&r->sh->dropped, n, memory_order_relaxed);
}

void ld_record_stats(const struct ld_record *r, uint64_t *written, uint64_t *dropped)
{
	*written = atomic_load_explicit(&r->sh->written, memory_order_relaxed);
	*dropped = atomic_load_explicit(&r->sh->dropped, memory_order_relaxed);
}

int ld_record_close(struct ld_record *r, uint64_t *written, uint64_t *dropped)
{
	int bad;

	if (!r)
		return 0;
	atomic_store(&r->stop, 1);
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	if (written)
		*written = atomic_load(&r->sh->written);
	if (dropped)
		*dropped = atomic_load(&r->sh->dropped);
	bad = atomic_load(&r->sh->broken);
	if (r->f && fclose(r->f) != 0) {
		ld_log("--record %s: %s", r->path, strerror(errno));
		bad = 1;
	}
	munmap(r->sh, pn_shared_bytes());
	free(r->path);
	free(r->blk);
	free(r);
	return bad ? -1 : 0;
}

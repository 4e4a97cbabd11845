// SPDX-License-Identifier: MIT
/*
 * replay.c - `luadivert replay POLICY IN.pcap -w OUT.pcap`: run a policy over
 * the packets of a capture file, without root and without a network.
 *
 * The policy runs in the same Lua host, through the same batch dispatch, as
 * on live traffic (lua_host.h): records are read with libpcap, the IP packet
 * behind each link header is copied into a per-batch buffer with room to grow
 * to 64 KiB (as NFQUEUE would hand it over), and Lua is called once per batch.
 *
 * Time is virtual: a packet's tstamp_ns is its capture time. A packet that is
 * not held is "released" at its capture time; a held one at capture time +
 * hold_ns. Before each record's outcome is written, every held packet due at
 * or before its capture time is written first, so the output is in release
 * order and carries release times as timestamps:
 *
 *   record:   r1(t=0)  r2(t=10, hold 15)  r3(t=20)  r4(t=30)
 *   output:   r1@0     r3@20              r2@25     r4@30
 *
 * Frames that are not IP go to the output untouched, at their capture time.
 * Live, a held packet waits in the kernel queue; here its frame waits in a
 * slot store (replay_store.h) and its release time in the timer heap.
 */
#include "replay_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "payload_check.h"
#include "record_pcapng.h"

/* Buffers for one batch and the held packets: allocated once, here. */
static int rp_alloc(struct rp *r)
{
	r->pbuf = malloc((size_t)LD_BATCH_MAX * RP_STRIDE);
	r->arena = malloc(RP_ARENA);
	if (!r->pbuf || !r->arena || ld_heap_init(&r->heap, r->max_held)) {
		fprintf(stderr, "luadivert replay: out of memory\n");
		return -1;
	}
	ld_rstore_init(&r->store);
	r->obs_cfg.offline = 1;
	{
		char err[512];

		r->obs = ld_obs_new(&r->obs_cfg, 0, r->default_verdict, &r->oc, err, sizeof(err));
		if (!r->obs) {
			fprintf(stderr, "luadivert replay: %s\n", err);
			return -1;
		}
	}
	r->batch.metrics = ld_obs_tables(r->obs);
	r->batch.pkts = r->pkts;
	r->batch.default_verdict = r->default_verdict;
	return 0;
}

static uint8_t *rp_pkt_data(struct rp *r, uint32_t i)
{
	return r->pbuf + (size_t)i * RP_STRIDE + LD_LINK_HDR_MAX;
}

static void rp_write(struct rp *r, uint64_t ts_ns, const uint8_t *frame, uint32_t caplen,
		     uint32_t wirelen)
{
	if (ld_pcap_out_write(&r->out, ts_ns, frame, caplen, wirelen) < 0) {
		if (errno == EOVERFLOW && !r->ts_overflow++)
			fprintf(stderr, "luadivert replay: a record's time stamp (%" PRIu64 " s) is "
				"past what a pcap file holds (2^32 s, 2106-02-07): such records are "
				"not written\n", (uint64_t)(ts_ns / RP_NS_PER_SEC));
		r->failed |= errno != EOVERFLOW;
		r->st.errors++;
		return;
	}
	r->st.written++;
	r->st.bytes_out += caplen;
}

/* Write a released packet: nothing when dropped, else 1 + dup copies. */
static void rp_emit(struct rp *r, uint64_t ts_ns, uint32_t verdict, uint32_t dup,
		    const uint8_t *frame, uint32_t caplen, uint32_t wirelen)
{
	if ((verdict & RP_VERDICT) == LD_DROP)
		return;
	if (dup > RP_DUP_MAX)
		dup = RP_DUP_MAX;
	for (uint32_t i = 0; i <= dup; i++)
		rp_write(r, ts_ns, frame, caplen, wirelen);
	r->st.dups += dup;
}

/*
 * Write every held packet due at or before @t, in due order, stopping at a
 * packet divert.inject() made while the policy handled record @rec_num or a
 * later one: that one goes out right after its record.
 */
static void rp_release_until(struct rp *r, uint64_t t, uint32_t rec_num)
{
	const struct ld_held *top;
	struct ld_held h;
	uint32_t wirelen;
	uint8_t *m;

	while ((top = ld_heap_peek(&r->heap)) && top->due_ns <= t &&
	       !((top->set & RP_SET_INJECTED) && top->id >= rec_num)) {
		ld_heap_pop(&r->heap, &h);
		m = ld_rstore_ptr(&r->store, h.slot);
		memcpy(&wirelen, m + 4, sizeof(wirelen));
		rp_emit(r, h.due_ns, h.verdict, h.dup, m + RP_SLOT_HDR, h.len, wirelen);
		ld_rstore_put(&r->store, h.slot);
	}
}

/*
 * The frame to write for an IP record: the original record when the policy
 * did not change the packet, else the original link header followed by the
 * new bytes (built in the headroom in front of them). As live (worker.c),
 * new bytes of a packet we only had part of, or of an empty or oversized
 * packet, are not used: the original goes out and the refusal is counted.
 */
static const uint8_t *rp_frame(struct rp *r, const struct rp_rec *rec, struct ld_packet *p,
			       uint32_t *caplen, uint32_t *wirelen)
{
	uint8_t *data = rp_pkt_data(r, (uint32_t)rec->pkt);
	uint32_t pad;

	const char *why = (p->set & LD_SET_MODIFIED)
		? ld_payload_refusal(p->len, p->cap, rec->ip_len < rec->ip_orig) : NULL;

	if (why) {
		p->set &= ~(uint32_t)LD_SET_MODIFIED;
		r->st.refused++;
		r->st.errors++;
		ld_log_limited(&r->lim, "record %u: modified bytes not used (%s)", rec->num, why);
	}
	if (!(p->set & LD_SET_MODIFIED)) {
		*caplen = rec->caplen;
		*wirelen = rec->wirelen;
		return r->arena + rec->off;
	}
	memcpy(data - rec->hdr_len, r->arena + rec->off, rec->hdr_len);
	pad = ld_link_set_ip_len(r->dlt, data - rec->hdr_len, rec->hdr_len, p->len);
	memset(data + p->len, 0, pad);     /* room: p->len <= LD_PAYLOAD_MAX */
	*caplen = rec->hdr_len + p->len + pad;
	*wirelen = *caplen;
	if (*caplen > r->snap_out)
		*caplen = r->snap_out;
	return data - rec->hdr_len;
}

/* Keep a frame until its release time. Return 0, 1 when the heap is full, -1 on error. */
static int rp_hold(struct rp *r, const struct rp_rec *rec, const struct ld_packet *p,
		   const uint8_t *frame, uint32_t caplen, uint32_t wirelen)
{
	struct ld_held e;
	uint8_t *m;

	memset(&e, 0, sizeof(e));
	m = ld_rstore_get(&r->store, RP_SLOT_HDR + (size_t)caplen, &e.slot);
	if (!m) {
		fprintf(stderr, "luadivert replay: record %u: cannot hold %u bytes: %s\n",
			rec->num, caplen, strerror(errno));
		return -1;
	}
	memcpy(m, &caplen, sizeof(caplen));
	memcpy(m + 4, &wirelen, sizeof(wirelen));
	memcpy(m + RP_SLOT_HDR, frame, caplen);
	e.due_ns = rec->ts_ns + p->hold_ns < rec->ts_ns ? UINT64_MAX : rec->ts_ns + p->hold_ns;
	e.id = rec->num;
	e.verdict = p->verdict;
	e.set = p->set & ~(uint32_t)LD_SET_HOLD;
	e.new_mark = p->new_mark;
	e.new_ct_mark = p->new_ct_mark;
	e.len = caplen;
	e.dup = p->dup;
	if (ld_heap_push(&r->heap, &e)) {
		ld_rstore_put(&r->store, e.slot);
		return 1;
	}
	return 0;
}

/*
 * divert.inject() in replay: the packet goes to the output at the time of
 * the packet being handled, behind that packet's link header, through the
 * hold heap (due now), so it is written in time order with everything else.
 */
static int rp_inject(void *ctx, const uint8_t *pkt, uint32_t len, int inbound,
		     uint32_t ifindex)
{
	struct rp *r = ctx;
	const struct rp_rec *rec = NULL;
	struct ld_held e;
	uint32_t i, caplen;
	uint8_t *m;

	(void)inbound;
	(void)ifindex;
	if (!r->batch.n)
		return -ENOTCONN;
	i = r->batch.next < r->batch.n ? r->batch.next : r->batch.n - 1;
	for (uint32_t k = 0; k < r->nrec && !rec; k++)
		if (r->rec[k].pkt == (int32_t)i)
			rec = &r->rec[k];
	if (!rec)
		return -ENOTCONN;
	caplen = rec->hdr_len + len;
	memset(&e, 0, sizeof(e));
	m = ld_rstore_get(&r->store, RP_SLOT_HDR + (size_t)caplen, &e.slot);
	if (!m)
		return -ENOMEM;
	memcpy(m, &caplen, sizeof(caplen));
	memcpy(m + 4, &caplen, sizeof(caplen));
	memcpy(m + RP_SLOT_HDR, r->arena + rec->off, rec->hdr_len);
	memcpy(m + RP_SLOT_HDR + rec->hdr_len, pkt, len);
	/* An Ethernet header of the other IP version says so. */
	if (r->dlt == DLT_EN10MB && rec->hdr_len == 14) {
		m[RP_SLOT_HDR + 12] = pkt[0] >> 4 == 6 ? 0x86 : 0x08;
		m[RP_SLOT_HDR + 13] = pkt[0] >> 4 == 6 ? 0xdd : 0x00;
	}
	if (caplen > r->snap_out)
		caplen = r->snap_out;
	e.due_ns = r->pkts[i].tstamp_ns;
	e.id = rec->num;
	e.verdict = LD_PASS;
	e.set = RP_SET_INJECTED;
	e.len = caplen;
	if (ld_heap_push(&r->heap, &e)) {
		ld_rstore_put(&r->store, e.slot);
		return -ENOBUFS;
	}
	r->st.injected++;
	return 0;
}

/* Act on the policy's decision for one IP record. */
static void rp_decide(struct rp *r, const struct rp_rec *rec, struct ld_packet *p)
{
	const uint8_t *frame;
	uint32_t caplen, wirelen;
	char vbuf[32];
	const char *vname;
	int held = 0;

	rp_count_verdict(&r->st, p->verdict);
	r->st.marked += !!(p->set & LD_SET_MARK);
	frame = rp_frame(r, rec, p, &caplen, &wirelen);
	r->st.modified += !!(p->set & LD_SET_MODIFIED);
	if (p->set & LD_SET_HOLD) {
		held = rp_hold(r, rec, p, frame, caplen, wirelen);
		if (held < 0)
			r->failed = 1;
		else if (held)
			r->st.overflow++;
		else
			r->st.held++;
	} else {
		rp_emit(r, rec->ts_ns, p->verdict, p->dup, frame, caplen, wirelen);
	}
	if (r->obs_cfg.record_path) {
		/* issue 13: the same comment as live; a hold that did not fit is a drop */
		struct ld_packet q = *p;

		if (held > 0) {
			q.verdict = LD_DROP;
			q.set &= ~(uint32_t)LD_SET_HOLD;
		}
		ld_obs_record_one(r->obs, &q, rec->ts_ns);
	}
	if (r->vf) {
		vname = held > 0 ? "OVERFLOW" : rp_verdict_name(p->verdict, vbuf, sizeof(vbuf));
		fprintf(r->vf, "%u %s 0x%x %u %u %" PRIu64 " %u\n", rec->num, vname,
			p->set & LD_SET_MARK ? p->new_mark : p->mark, rec->ip_len,
			p->set & LD_SET_MODIFIED ? p->len : rec->ip_len,
			p->set & LD_SET_HOLD ? p->hold_ns : 0, p->dup);
	}
}

/* issue 13: the replay's stats as the counters --report samples. */
static void rp_obs_counters(struct rp *r)
{
	const struct rp_stats *st = &r->st;

	r->oc.received = st->ip;
	r->oc.passed = st->pass + st->queue + st->repeat + st->other;
	r->oc.repeated = st->repeat;
	r->oc.queued = st->queue;
	r->oc.dropped = st->drop + st->overflow;
	r->oc.held = st->held;
	r->oc.hold_overflow = st->overflow;
	r->oc.modified = st->modified;
	r->oc.errors = r->oc.defaulted = st->errors;
	r->oc.bytes_received = st->bytes_in;
}

/* Run the policy over the batch, then write (or hold) each record in order. */
static void rp_flush(struct rp *r)
{
	struct rp_rec *rec;

	if (!r->nrec)
		return;
	ld_obs_tick(r->obs, r->rec[0].ts_ns);   /* issue 13: report samples on the capture clock */
	if (r->batch.n) {
		r->batch.next = 0;
		r->batch.now_ns = r->pkts[r->batch.n - 1].tstamp_ns;
		r->st.errors += ld_lua_dispatch(r->lua);
	}
	for (uint32_t k = 0; k < r->nrec && !r->failed; k++) {
		rec = &r->rec[k];
		rp_release_until(r, rec->ts_ns, rec->num);
		if (rec->pkt >= 0) {
			rp_decide(r, rec, &r->pkts[rec->pkt]);
			/* what the policy injected while handling it */
			rp_release_until(r, rec->ts_ns, rec->num + 1);
			continue;
		}
		rp_write(r, rec->ts_ns, r->arena + rec->off, rec->caplen, rec->wirelen);
		if (r->vf)
			fprintf(r->vf, "%u NONIP - %u %u 0 0\n", rec->num, rec->caplen, rec->caplen);
	}
	if (r->nrec) {
		r->last_ts = r->rec[r->nrec - 1].ts_ns;
		rp_obs_counters(r);
		ld_obs_tick(r->obs, r->last_ts);
	}
	r->nrec = 0;
	r->batch.n = 0;
	r->arena_used = 0;
	/* a full disk stops the replay; rp_close() says why */
	if (r->out.f && ferror(r->out.f))
		r->failed = 1;
}

/* Hand the IP packet of @rec to the next descriptor of the batch. */
static void rp_add_ip(struct rp *r, struct rp_rec *rec, const struct ld_link_l3 *l3)
{
	const uint8_t *ip = r->arena + rec->off + l3->hdr_len;
	uint32_t i = r->batch.n++;
	uint32_t ipcap = rec->caplen - l3->hdr_len;
	uint32_t ipwire = (rec->wirelen > rec->caplen ? rec->wirelen : rec->caplen) - l3->hdr_len;
	uint32_t decl = ld_link_ip_len(l3->hw_proto, ip, ipcap);
	struct ld_packet *p = &r->pkts[i];

	/* The kernel hands over the IP packet without link padding: trim it. */
	if (decl && decl < ipcap)
		ipcap = ipwire = decl;
	else if (decl && decl < ipwire)
		ipwire = decl;
	if (ipcap > LD_PACKET_MAX)
		ipcap = LD_PACKET_MAX;
	memcpy(rp_pkt_data(r, i), ip, ipcap);
	memset(p, 0, sizeof(*p));
	p->data = rp_pkt_data(r, i);
	p->len = ipcap;
	p->cap = LD_PACKET_MAX;
	p->orig_len = ipwire;
	p->id = rec->num;
	p->hw_proto = l3->hw_proto;
	p->flags = ipcap < ipwire ? LD_PKT_TRUNCATED : 0;
	p->tstamp_ns = rec->ts_ns;
	p->verdict = r->default_verdict;
	rec->pkt = (int32_t)i;
	rec->hdr_len = l3->hdr_len;
	rec->ip_len = ipcap;
	rec->ip_orig = ipwire;
	r->st.ip++;
	r->st.truncated += ipcap < ipwire;
}

/*
 * A record's time stamp in ns. A pcap file stores unsigned 32-bit seconds,
 * which libpcap hands over as a signed number: from 2^31 s (2038-01-19)
 * on they come out negative. pcapng has 64 bits and needs no help.
 */
static uint64_t rp_ts_ns(const struct rp *r, const struct pcap_pkthdr *h)
{
	uint64_t sec = (uint64_t)h->ts.tv_sec;

	if (!r->pcapng && h->ts.tv_sec < 0)
		sec = (uint32_t)h->ts.tv_sec;
	return sec * RP_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
}

/* Take one record from libpcap into the batch. */
static void rp_add(struct rp *r, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct ld_link_l3 l3;
	struct rp_rec *rec;
	uint32_t caplen = h->caplen;

	if (r->nrec == RP_RECS || (uint64_t)r->arena_used + caplen > RP_ARENA)
		rp_flush(r);
	if (caplen > RP_ARENA)  /* libpcap caps records at 256 KiB; be safe anyway */
		caplen = RP_ARENA;
	rec = &r->rec[r->nrec++];
	rec->ts_ns = rp_ts_ns(r, h);
	rec->num = (uint32_t)++r->st.records;
	rec->off = r->arena_used;
	rec->caplen = caplen;
	rec->wirelen = h->len;   /* as recorded, 0 included: written back unchanged */
	rec->pkt = -1;
	memcpy(r->arena + r->arena_used, bytes, caplen);
	r->arena_used += caplen;
	r->st.bytes_in += caplen;
	if (ld_link_decap(r->dlt, bytes, caplen, &l3))
		rp_add_ip(r, rec, &l3);
	else
		r->st.nonip++;
	if (r->batch.n == r->batch_max)
		rp_flush(r);
}

/* Read every record; on a read error stop, keeping what came before it. */
static void rp_loop(struct rp *r)
{
	struct pcap_pkthdr *h;
	const u_char *bytes;
	int rc;

	while (!r->failed) {
		rc = pcap_next_ex(r->in, &h, &bytes);
		if (rc == 1) {
			rp_add(r, h, bytes);
			if (r->nrec == 0)
				rp_progress(r, 0);
			continue;
		}
		if (rc != PCAP_ERROR_BREAK)
			snprintf(r->read_err, sizeof(r->read_err), "record %" PRIu64 ": %s",
				 r->st.records + 1, rc == PCAP_ERROR ? pcap_geterr(r->in) :
				 "unexpected end of the capture");
		break;
	}
	rp_flush(r);
	/* what is held goes out even after an error (pointless only on a full disk) */
	rp_release_until(r, UINT64_MAX, UINT32_MAX);
}

/* Flush and close the outputs; 0 when everything reached the files. */
static int rp_close(struct rp *r)
{
	int bad = 0;

	if (r->out.f && ld_pcap_out_close(&r->out) < 0) {
		fprintf(stderr, "luadivert replay: %s: write error: %s\n", r->out_path,
			strerror(errno));
		bad = 1;
	}
	if (r->vf) {
		/* a write error that a later flush hid still shows in ferror() */
		int verr = ferror(r->vf) != 0;

		if ((r->vf == stdout ? fflush(r->vf) : fclose(r->vf)) || verr) {
			fprintf(stderr, "luadivert replay: %s: write error: %s\n", r->verdicts_path,
				strerror(errno));
			bad = 1;
		}
		r->vf = NULL;
	}
	return bad;
}

static void rp_free(struct rp *r)
{
	ld_lua_free(r->lua);
	ld_obs_free(r->obs, r->last_ts, "luadivert replay (stopped)");
	ld_pcap_out_close(&r->out);
	if (r->vf && r->vf != stdout && fclose(r->vf))
		fprintf(stderr, "luadivert replay: %s: %s\n", r->verdicts_path, strerror(errno));
	if (r->in)
		pcap_close(r->in);
	ld_heap_free(&r->heap);
	ld_rstore_free(&r->store);
	free(r->pbuf);
	free(r->arena);
	free(r);
}

/**
 * ld_cmd_replay() - `luadivert replay POLICY IN.pcap -w OUT.pcap [options]`
 * @argc: argument count
 * @argv: arguments, argv[0] = "replay"
 *
 * Runs POLICY over every packet of a pcap/pcapng capture with the live
 * batch dispatch, on the capture's clock, and writes the outcome to a pcap
 * file in release order. A read error stops the replay at that record:
 * everything before it is handled, held packets are released, the output is
 * written, and the error names the record.
 *
 * Return: 0 when the whole capture was replayed, 1 on a read, write or
 * policy error, 2 on bad usage.
 */
int ld_cmd_replay(int argc, char **argv)
{
	struct ld_lua_cfg cfg;
	struct rp *r = calloc(1, sizeof(*r));
	char err[1024];
	int rc, status = 1;

	if (!r) {
		fprintf(stderr, "luadivert replay: out of memory\n");
		return 1;
	}
	rc = rp_parse(r, argc, argv);
	if (rc) {
		free(r);
		return rc < 0 ? 0 : rc;
	}
	if (r->seed && setenv("LUADIVERT_SEED", r->seed, 1)) {
		fprintf(stderr, "luadivert replay: setenv: %s\n", strerror(errno));
		free(r);
		return 1;
	}
	if (rp_open_input(r) || rp_alloc(r))
		goto out;
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = r->policy;
	cfg.lua_dir = r->lua_dir;
	r->sink = (struct ld_inject_sink){ .send = rp_inject, .ctx = r };
	cfg.sink = &r->sink;
	cfg.log_limit = &r->lim;
	err[0] = 0;
	r->lua = ld_lua_new(&cfg, &r->batch, err, sizeof(err));
	if (!r->lua) {
		fprintf(stderr, "luadivert replay: %s\n", err[0] ? err : "cannot load the policy");
		goto out;
	}
	if (rp_open_output(r))
		goto out;
	r->progress = !r->quiet && isatty(STDERR_FILENO);
	r->t_start = r->t_shown = rp_clock_ns();
	rp_loop(r);
	rp_progress(r, 1);
	if (rp_close(r))
		r->failed = 1;
	/* the policy's on_stop runs here, before the summary */
	if (ld_lua_stop(r->lua) < 0)
		r->failed = 1;
	ld_lua_free(r->lua);
	r->lua = NULL;
	rp_obs_counters(r);
	{
		char title[PATH_MAX + 64];

		snprintf(title, sizeof(title), "luadivert replay %s %s", r->policy, r->in_path);
		if (ld_obs_free(r->obs, r->last_ts, title) < 0)
			r->failed = 1;
		r->obs = NULL;
	}
	ld_log_limit_flush(&r->lim);
	if (!r->quiet)
		rp_summary(r, rp_clock_ns() - r->t_start);
	if (r->read_err[0])
		fprintf(stderr, "luadivert replay: %s: %s (the records before it were replayed "
			"and written)\n", r->in_path, r->read_err);
	status = r->read_err[0] || r->failed || r->ts_overflow;
out:
	rp_free(r);
	return status;
}

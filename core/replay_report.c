// SPDX-License-Identifier: MIT
/* replay_report.c - what `luadivert replay` shows: progress, summary, verdict names (replay_priv.h). */
#include "replay_priv.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t rp_clock_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * RP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

const char *rp_verdict_name(uint32_t v, char *buf, size_t n)
{
	switch (v & RP_VERDICT) {
	case LD_DROP:
		return "DROP";
	case LD_PASS:
		return "PASS";
	case LD_REPEAT:
		return "REPEAT";
	case LD_OFFLOAD:
		return "OFFLOAD";
	case LD_QUEUE:
		snprintf(buf, n, "QUEUE:%u", v >> 16);
		return buf;
	default:
		snprintf(buf, n, "VERDICT:%u", v);
		return buf;
	}
}

void rp_count_verdict(struct rp_stats *st, uint32_t v)
{
	switch (v & RP_VERDICT) {
	case LD_DROP:
		st->drop++;
		break;
	case LD_PASS:
	case LD_OFFLOAD:   /* no connection to offload in a capture: a pass */
		st->pass++;
		break;
	case LD_QUEUE:
		st->queue++;
		break;
	case LD_REPEAT:
		st->repeat++;
		break;
	default:
		st->other++;
		break;
	}
}

void rp_progress(struct rp *r, int last)
{
	uint64_t now = rp_clock_ns(), el;
	double frac = -1, rate, eta = 0;
	char bar[RP_BAR + 1];
	off_t pos;
	int fill;

	if (!r->progress || (!last && now - r->t_shown < RP_PROGRESS_NS))
		return;
	r->t_shown = now;
	el = now - r->t_start;
	pos = r->in_size > 0 ? ftello(pcap_file(r->in)) : -1;
	if (last)
		frac = 1;
	else if (pos >= 0)
		frac = (double)pos / (double)r->in_size;
	rate = el ? (double)r->st.records * 1e9 / (double)el : 0;
	if (frac > 0)
		eta = (double)el / 1e9 * (1 - frac) / frac;
	fill = frac > 0 ? (int)(frac * RP_BAR) : 0;
	for (int i = 0; i < RP_BAR; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[RP_BAR] = 0;
	if (frac >= 0)
		fprintf(stderr, "\r[%s] %3d%% %" PRIu64 " packets %.0f/s %.0fs left ", bar,
			(int)(frac * 100), r->st.records, rate, eta);
	else
		fprintf(stderr, "\r%" PRIu64 " packets %.0f/s ", r->st.records, rate);
	if (last)
		fputc('\n', stderr);
}

void rp_summary(const struct rp *r, uint64_t el)
{
	const struct rp_stats *s = &r->st;

	fprintf(stderr, "replay: %" PRIu64 " records (%" PRIu64 " IP, %" PRIu64 " not IP) in %.3f s,"
		" %.0f records/s\n", s->records, s->ip, s->nonip, (double)el / 1e9,
		el ? (double)s->records * 1e9 / (double)el : 0.0);
	fprintf(stderr, "verdicts: pass %" PRIu64 ", drop %" PRIu64 ", queue %" PRIu64 ", repeat %"
		PRIu64 "; modified %" PRIu64 ", marked %" PRIu64 ", held %" PRIu64 ", duplicates %"
		PRIu64 ", errors %" PRIu64 "\n", s->pass, s->drop, s->queue, s->repeat, s->modified,
		s->marked, s->held, s->dups, s->errors);
	fprintf(stderr, "output: %" PRIu64 " records, %" PRIu64 " bytes (input %" PRIu64 " bytes)\n",
		s->written, s->bytes_out, s->bytes_in);
	if (s->injected)
		fprintf(stderr, "injected: %" PRIu64 " new packets from divert.inject()\n", s->injected);
	if (s->truncated || s->overflow || s->refused || s->other)
		fprintf(stderr, "notes: %" PRIu64 " snap-truncated, %" PRIu64 " dropped (hold table "
			"full), %" PRIu64 " changes not used (truncated packet or bad length), %" PRIu64
			" unknown verdicts (passed)\n", s->truncated, s->overflow, s->refused, s->other);
}

// SPDX-License-Identifier: MIT
/* hold_takeover.c - copies of held local packets, sent at release (see hold_takeover.h). */
#include "hold_takeover.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "csum.h"
#include "gso_segment.h"

enum {
	NF_LOCAL_OUT = 3,       /* NF_INET_LOCAL_OUT */
	NF_POST_ROUTING = 4,    /* NF_INET_POST_ROUTING */
};

int ld_takeover_init(struct ld_takeover *t, struct ld_store *store, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->ioctl_fd = -1;
	if (!store)
		return 0;
	t->buf = malloc((size_t)LD_PACKET_MAX + LD_TAKEOVER_SEG_AREA);
	if (!t->buf) {
		snprintf(err, errlen, "hold store buffers: %s", strerror(errno));
		return -1;
	}
	t->seg = t->buf + LD_PACKET_MAX;
	t->ioctl_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t->ioctl_fd < 0)
		t->ioctl_fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t->ioctl_fd < 0) {
		snprintf(err, errlen, "hold store: %s", strerror(errno));
		ld_takeover_free(t);
		return -1;
	}
	t->store = store;
	return 0;
}

void ld_takeover_free(struct ld_takeover *t)
{
	free(t->buf);
	if (t->ioctl_fd >= 0)
		close(t->ioctl_fd);
	memset(t, 0, sizeof(*t));
	t->ioctl_fd = -1;
}

/* The output device's MTU, cached for a second; 0 when it cannot be read. */
static uint32_t dev_mtu(struct ld_takeover *t, uint32_t ifindex, uint64_t now_ns)
{
	struct ld_mtu_slot *s = NULL;
	struct ifreq ifr;

	if (!ifindex)
		return 0;
	for (uint32_t i = 0; i < LD_TAKEOVER_MTU_SLOTS; i++) {
		if (t->mtu[i].ifindex == ifindex) {
			s = &t->mtu[i];
			break;
		}
	}
	if (s && now_ns - s->read_ns < LD_TAKEOVER_MTU_TTL_NS)
		return s->mtu;
	if (!s) {
		s = &t->mtu[t->mtu_next];
		t->mtu_next = (t->mtu_next + 1) % LD_TAKEOVER_MTU_SLOTS;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = (int)ifindex;
	s->ifindex = ifindex;
	s->read_ns = now_ns;
	s->mtu = 0;
	if (ioctl(t->ioctl_fd, SIOCGIFNAME, &ifr) == 0 && ioctl(t->ioctl_fd, SIOCGIFMTU, &ifr) == 0 &&
	    ifr.ifr_mtu > 0)
		s->mtu = (uint32_t)ifr.ifr_mtu;
	return s->mtu;
}

static int local_origin(const struct ld_packet *p)
{
	return p->hook == NF_LOCAL_OUT || (p->hook == NF_POST_ROUTING && p->indev == 0);
}

int ld_takeover_take(struct ld_takeover *t, const struct ld_packet *p, uint64_t now_ns,
		     uint32_t *copy)
{
	struct ld_gso_plan plan;
	uint32_t mtu;

	*copy = LD_STORE_NONE;
	if (!t->store || !local_origin(p))
		return LD_TAKE_KEEP;
	if ((p->set & (LD_SET_MARK | LD_SET_CT_MARK)) || (p->flags & LD_PKT_TRUNCATED))
		return LD_TAKE_KEEP;
	if (p->verdict == LD_DROP)
		return LD_TAKE_DROP;
	if (p->verdict != LD_PASS || p->len == 0 || p->len > p->cap || p->len > LD_PACKET_MAX)
		return LD_TAKE_KEEP;
	mtu = dev_mtu(t, p->outdev, now_ns);
	if (!mtu)
		return LD_TAKE_KEEP;
	if (p->len > mtu) {
		if (ld_gso_plan(p->data, p->len, mtu, &plan) < 0)
			return LD_TAKE_KEEP;
	} else if ((p->flags & LD_PKT_CSUM_NOTREADY) && ld_csum_fill_l4(p->data, p->len) < 0) {
		/* The original is ours once taken, so its bytes can be completed in place. */
		return LD_TAKE_KEEP;
	}
	*copy = ld_store_put(t->store, p->data, p->len);
	return *copy == LD_STORE_NONE ? LD_TAKE_FULL : LD_TAKE_COPY;
}

/*
 * Build the segments of a planned packet into the segment area and send
 * them a batch at a time (one sendmmsg per LD_INJECT_BATCH segments or per
 * full area). Return the segments the kernel took.
 */
static uint32_t send_segments(struct ld_takeover *t, struct ld_inject *inj,
			      const struct ld_gso_plan *plan, const uint8_t *data, uint32_t outdev,
			      const uint32_t *tags)
{
	const uint8_t *pkts[LD_INJECT_BATCH];
	uint32_t lens[LD_INJECT_BATCH];
	uint32_t n = 0, used = 0, sent = 0;

	for (uint32_t i = 0; i < plan->nseg; i++) {
		if (n == LD_INJECT_BATCH || used + plan->hdr_len + plan->mss > LD_TAKEOVER_SEG_AREA) {
			sent += ld_inject_send_tagged(inj, pkts, lens, tags, n, outdev);
			n = used = 0;
		}
		pkts[n] = t->seg + used;
		lens[n] = ld_gso_build(plan, data, i, t->seg + used);
		used += (lens[n] + 7) & ~7u;
		n++;
	}
	if (n)
		sent += ld_inject_send_tagged(inj, pkts, lens, tags, n, outdev);
	return sent;
}

/*
 * ld_takeover_send() with a tag: a release's packets (segments) go through
 * ld_inject_send_tagged(), so that the sender's log names them (inject.h).
 */
static uint32_t send_copy(struct ld_takeover *t, struct ld_inject *inj, uint8_t *data,
			  uint32_t len, uint32_t outdev, uint32_t flags, uint32_t times,
			  uint64_t now_ns, uint32_t tag, uint32_t *failed)
{
	uint32_t mtu = t->store ? dev_mtu(t, outdev, now_ns) : 0, sent = 0;
	uint32_t tags[LD_INJECT_BATCH];
	const uint32_t *tp = NULL;
	struct ld_gso_plan plan;

	if (tag != LD_INJECT_NO_TAG) {
		for (uint32_t i = 0; i < LD_INJECT_BATCH; i++)
			tags[i] = tag;
		tp = tags;
	}

	*failed = 0;
	if (!times)
		return 0;
	if (inj->fd4 < 0 && inj->fd6 < 0) {
		*failed = times;
		return 0;
	}
	if (mtu && len > mtu && t->seg && ld_gso_plan(data, len, mtu, &plan) == 0 &&
	    plan.nseg > 1) {
		/* released copies waiting in the segment area go first */
		uint32_t f = 0;

		sent = ld_takeover_flush(t, inj, &f);
		*failed += f;
		t->segmented++;
		for (uint32_t k = 0; k < times; k++) {
			uint32_t n = send_segments(t, inj, &plan, data, outdev, tp);

			t->segments += n;
			*failed += plan.nseg - n;
			sent += n;
		}
		return sent;
	}
	if (flags & LD_PKT_CSUM_NOTREADY)
		ld_csum_fill_l4(data, len);
	for (uint32_t k = 0; k < times; k++) {
		const uint8_t *one = data;

		if (tp ? ld_inject_send_tagged(inj, &one, &len, tp, 1, outdev) == 1
		       : ld_inject_send_dev(inj, data, len, outdev) == 0)
			sent++;
		else
			(*failed)++;
	}
	return sent;
}

uint32_t ld_takeover_send(struct ld_takeover *t, struct ld_inject *inj, uint8_t *data,
			  uint32_t len, uint32_t outdev, uint32_t flags, uint32_t times,
			  uint64_t now_ns, uint32_t *failed)
{
	return send_copy(t, inj, data, len, outdev, flags, times, now_ns, LD_INJECT_NO_TAG,
			 failed);
}

uint32_t ld_takeover_flush(struct ld_takeover *t, struct ld_inject *inj, uint32_t *failed)
{
	uint32_t sent = t->bn ? ld_inject_send_tagged(inj, t->bp, t->bl, t->btag, t->bn, t->bdev)
			      : 0;

	*failed = t->bn - sent;
	t->bn = 0;
	t->bused = 0;
	return sent;
}

uint32_t ld_takeover_release(struct ld_takeover *t, struct ld_inject *inj, uint32_t copy,
			     uint32_t len, uint32_t outdev, uint32_t flags, uint32_t times,
			     uint64_t now_ns, uint32_t tag, uint32_t *failed)
{
	uint32_t sent = 0, mtu, f = 0;

	*failed = 0;
	if (!t->store || copy == LD_STORE_NONE)
		return 0;
	mtu = times ? dev_mtu(t, outdev, now_ns) : 0;
	if (times && mtu && len > mtu) {
		/* A GSO packet: its segments are a batch of their own. */
		sent = ld_takeover_flush(t, inj, failed);
		ld_store_get(t->store, copy, len, t->buf);
		/* Checksums of taken copies were completed at take time. */
		sent += send_copy(t, inj, t->buf, len, outdev,
				  flags & ~(uint32_t)LD_PKT_CSUM_NOTREADY, times, now_ns, tag, &f);
		*failed += f;
	} else {
		for (uint32_t k = 0; k < times; k++) {
			if (t->bn == LD_INJECT_BATCH || t->bused + len > LD_TAKEOVER_SEG_AREA ||
			    (t->bn && t->bdev != outdev)) {
				sent += ld_takeover_flush(t, inj, &f);
				*failed += f;
			}
			/* Queued for the next flush, in release order. */
			t->bp[t->bn] = t->seg + t->bused;
			t->bl[t->bn] = len;
			t->btag[t->bn] = tag;
			t->bdev = outdev;
			ld_store_get(t->store, copy, len, t->seg + t->bused);
			t->bused += (len + 7) & ~7u;
			t->bn++;
		}
	}
	ld_store_free(t->store, copy);
	return sent;
}

/* SPDX-License-Identifier: MIT */
/*
 * nfq_priv.h - what nfq.c (the socket and its configuration), nfq_recv.c
 * (the batched receive) and nfq_verdict.c (the batched verdicts) share.
 * Not an interface for anything else: that is nfq.h.
 */
#ifndef LD_NFQ_PRIV_H
#define LD_NFQ_PRIV_H

#include "nfq.h"

#include <arpa/inet.h>
#include <stdio.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/*
 * libmnl's mnl_nlmsg_ok() compares nlmsg_len with the bytes left as an int:
 * a length of 2^31 or more passes, and mnl_nlmsg_next() then jumps outside
 * the buffer (found by fuzz/nfq_parse_fuzz.c). Compare unsigned.
 */
static inline int nlmsg_ok(const struct nlmsghdr *nlh, int len)
{
	return len >= (int)NLMSG_HDRLEN && nlh->nlmsg_len >= NLMSG_HDRLEN &&
	       nlh->nlmsg_len <= (uint32_t)len;
}

/**
 * ld_nfq_verdict_stray() - the default verdict for a packet that arrived
 * while we waited for a config reply (nfq_recv.c)
 * @q: the queue
 * @nlh: the packet's message
 */
void ld_nfq_verdict_stray(struct ld_nfq *q, const struct nlmsghdr *nlh);

#endif /* LD_NFQ_PRIV_H */

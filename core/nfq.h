/* SPDX-License-Identifier: MIT */
/*
 * nfq.h - one NFQUEUE queue: bind and configure it, receive packets in
 * batches, send verdicts in batches. Built on libmnl and the nfq_nlmsg_*
 * helpers of libnetfilter_queue.
 */
#ifndef LD_NFQ_H
#define LD_NFQ_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "counters.h"
#include "ld_abi.h"
#include "log.h"

enum {
	/*
	 * One receive slot holds one netlink message: the packet (at most
	 * 64 KiB - 1 copied) plus its attributes. The slack after the packet
	 * lets a policy grow it in place up to LD_PACKET_MAX.
	 */
	LD_RX_SLOT       = 65536 + 8192,
	LD_QUEUE_MAXLEN_DEFAULT = 4096,    /* packets the kernel keeps for us */
	LD_VERDICT_HDR_ROOM = 128,         /* one verdict message without its payload */
	LD_SEND_BYTES_MAX = 1 << 20,       /* split a verdict send beyond this... */
	LD_SEND_SLACK     = 64,            /* ...or beyond the real send buffer less this */
	LD_SEND_IOV_MAX   = 1020,          /* below IOV_MAX (1024) */
};

struct ld_nfq_cfg {
	uint16_t queue;
	uint32_t maxlen;        /* kernel queue length */
	int      fail_open;     /* NFQA_CFG_F_FAIL_OPEN: accept when the queue is full */
	uint32_t default_verdict;
	int      whole_packets; /* no GSO, uid/gid or conntrack: the kernel segments GSO
	                         * packets and finishes checksums before queueing
	                         * (what FreeBSD divert programs expect) */
};

/* One pending verdict message; the payload, if any, stays where it lies. */
struct ld_verdict_msg {
	uint8_t  hdr[LD_VERDICT_HDR_ROOM];
	uint32_t hdr_len;
	const uint8_t *payload; /* NULL: no payload */
	uint32_t payload_len;
};

struct ld_nfq {
	struct mnl_socket *nl;
	int        fd;
	uint32_t   portid;
	uint32_t   seq;
	struct ld_nfq_cfg cfg;
	uint8_t   *rx;                          /* LD_BATCH_MAX * LD_RX_SLOT bytes, mmap'd */
	struct mmsghdr rx_msgs[LD_BATCH_MAX];
	struct iovec   rx_iov[LD_BATCH_MAX];
	uint32_t   send_max;                    /* bytes per sendmsg: the real SO_SNDBUF */
	uint32_t   last_id;                     /* newest packet id seen */
	int        seen_any;
	int        bound;                       /* the queue is bound (ld_nfq_bind) */
	/* verdict messages waiting to be sent, in order */
	struct ld_verdict_msg *tx;              /* tx_cap entries */
	uint32_t   tx_n;
	uint32_t   tx_cap;
	struct iovec *tx_iov;                   /* 3 per message */
	struct ld_counters *c;
	struct ld_log_limit *lim;
};

/**
 * ld_nfq_open() - bind a queue and configure it for whole packets, GSO,
 * uid/gid and conntrack information
 * @q: queue state to fill in
 * @cfg: queue number and options
 * @tx_cap: most verdict messages queued between two sends (batch + releases)
 * @c: counters to update
 * @lim: rate limit for error messages
 * @err: receives a readable message on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 with @err set (e.g. the queue is bound by another process)
 * and errno set (EBUSY: bound by another socket, EPERM: no CAP_NET_ADMIN).
 */
int ld_nfq_open(struct ld_nfq *q, const struct ld_nfq_cfg *cfg, uint32_t tx_cap,
		struct ld_counters *c, struct ld_log_limit *lim, char *err, size_t errlen);

/**
 * ld_nfq_socket() - ld_nfq_open() without the bind: the netlink socket and
 * buffers only, so that a supervisor can fork workers that inherit the
 * socket (same portid) before the queue is bound
 * @q: queue state to fill in
 * @cfg: queue number and options
 * @tx_cap: most verdict messages queued between two sends
 * @c: counters to update
 * @lim: rate limit for error messages
 * @err: receives a readable message on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 with @err set.
 */
int ld_nfq_socket(struct ld_nfq *q, const struct ld_nfq_cfg *cfg, uint32_t tx_cap,
		  struct ld_counters *c, struct ld_log_limit *lim, char *err, size_t errlen);

/**
 * ld_nfq_bind() - bind and configure the queue on a socket from ld_nfq_socket()
 * @q: queue
 * @err: receives a readable message on failure
 * @errlen: size of @err
 *
 * Nobody else may read the socket meanwhile (it waits for the replies).
 * Return: 0, or -1 with @err set; the socket stays open either way.
 */
int ld_nfq_bind(struct ld_nfq *q, char *err, size_t errlen);

/**
 * ld_nfq_recv_batch() - read up to LD_BATCH_MAX packets without blocking
 * @q: queue
 * @pkts: descriptors to fill; data points into @q's receive buffers
 * @now_ns: receive time stamped on every packet
 *
 * Each descriptor gets verdict = the default verdict and set = 0. Error
 * replies from the kernel are counted and logged, not returned.
 * Return: number of packets (0 when nothing was waiting), or -1 on a fatal
 * socket error (errno set). ENOBUFS and similar are counted and give 0.
 */
int ld_nfq_recv_batch(struct ld_nfq *q, struct ld_packet *pkts, uint64_t now_ns);

/**
 * ld_nfq_verdict() - queue the verdict for one packet
 * @q: queue
 * @id: packet id
 * @verdict: enum ld_verdict (LD_QUEUE with the queue number in bits 16..31)
 * @set: enum ld_packet_set: LD_SET_MARK, LD_SET_CT_MARK, LD_SET_MODIFIED
 * @mark: new mark (LD_SET_MARK)
 * @ct_mark: new conntrack mark (LD_SET_CT_MARK)
 * @payload: new bytes (LD_SET_MODIFIED); must stay valid until ld_nfq_flush()
 * @len: their length
 *
 * Sends first when the pending messages are full.
 */
void ld_nfq_verdict(struct ld_nfq *q, uint32_t id, uint32_t verdict, uint32_t set,
		    uint32_t mark, uint32_t ct_mark, const uint8_t *payload, uint32_t len);

/**
 * ld_nfq_verdict_batch() - queue one NFQNL_MSG_VERDICT_BATCH
 * @q: queue
 * @max_id: every packet still queued with an id up to this one gets @verdict
 * @verdict: the verdict
 *
 * The kernel applies it after the individual verdicts queued before it, in
 * the same send; the caller makes sure no held packet lies within the range.
 */
void ld_nfq_verdict_batch(struct ld_nfq *q, uint32_t max_id, uint32_t verdict);

/**
 * ld_nfq_flush() - send every queued verdict message with one sendmsg
 * (more only when they exceed the send buffer, LD_SEND_BYTES_MAX or
 * LD_SEND_IOV_MAX; a send the kernel refuses as too big is split in two)
 * @q: queue
 *
 * Failures are counted and logged; the daemon carries on.
 */
void ld_nfq_flush(struct ld_nfq *q);

/**
 * ld_nfq_learn_sndbuf() - size verdict sends to the socket's real send buffer
 * @q: queue with an open socket
 *
 * SO_SNDBUFFORCE fails without CAP_NET_ADMIN in the initial user namespace
 * (containers); the buffer is then what SO_SNDBUF and net.core.wmem_max
 * allow, and a bigger send fails with EMSGSIZE.
 * Return: 0, or -1 (errno set) when getsockopt fails.
 */
int ld_nfq_learn_sndbuf(struct ld_nfq *q);

/**
 * ld_nfq_sweep_id() - the max_id of the shutdown catch-all batch verdict
 * @last_id: the newest packet id read
 * @maxlen: the kernel queue length configured
 *
 * Return: an id whose batch verdict covers every packet still queued:
 * the ones newer than @last_id (at most @maxlen) and the ones older.
 */
uint32_t ld_nfq_sweep_id(uint32_t last_id, uint32_t maxlen);

/**
 * ld_nfq_close() - give every packet still in the kernel queue a verdict,
 * then unbind and close
 * @q: queue
 * @sweep_verdict: verdict for packets read during the drain and for every
 *                 packet still queued (the catch-all batch verdict)
 *
 * New packets arriving meanwhile are handled by the kernel (queue length 0:
 * accepted with fail-open when @sweep_verdict is accept, dropped otherwise)
 * so that none is left without a verdict when the queue goes away.
 * Return: packets verdicted by the drain.
 */
uint64_t ld_nfq_close(struct ld_nfq *q, uint32_t sweep_verdict);

/**
 * ld_nfq_detach() - send what is queued, then close the socket without
 * unbinding the queue
 * @q: queue
 *
 * For a socket other processes may still hold (after fork): the kernel
 * unbinds the queue, and drops what it still holds, when the last holder
 * closes the socket.
 */
void ld_nfq_detach(struct ld_nfq *q);

#endif /* LD_NFQ_H */

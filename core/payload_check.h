/* SPDX-License-Identifier: MIT */
/*
 * payload_check.h - may the changed bytes of a packet be sent back?
 *
 * One rule for live mode (worker.c) and replay (replay.c), so that a policy
 * tested on a capture is refused exactly where it would be on a queue.
 */
#ifndef LD_PAYLOAD_CHECK_H
#define LD_PAYLOAD_CHECK_H

#include <stdint.h>

#include "ld_abi.h"

/**
 * ld_payload_refusal() - why a changed packet's bytes cannot be sent back
 * @len: the packet's length now
 * @cap: the bytes writable at its data
 * @truncated: the kernel (or the capture) gave only part of the packet
 *
 * A verdict carries the bytes in one netlink attribute whose length is 16
 * bits, header included: more than LD_PAYLOAD_MAX bytes would wrap it and
 * the kernel would get a malformed message.
 * Return: NULL when the bytes may be sent, else a reason for the log.
 */
static inline const char *ld_payload_refusal(uint32_t len, uint32_t cap, int truncated)
{
	if (truncated)
		return "the kernel gave only part of it";
	if (len == 0)
		return "empty packet";
	if (len > cap)
		return "longer than its buffer";
	if (len > LD_PAYLOAD_MAX)
		return "longer than a verdict can carry (65531 bytes)";
	return 0;
}

#endif /* LD_PAYLOAD_CHECK_H */

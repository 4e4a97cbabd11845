// SPDX-License-Identifier: MIT
/*
 * inject_unit.c - unit tests of core/inject.c that need no privileges: what
 * ld_inject_send() refuses before it reaches a socket (not IP, truncated,
 * lengths that disagree, no socket for the family), and that each refusal is
 * counted and reported as EINVAL. Sending for real is covered by
 * tests/integration/test_shape_inject.sh. Built with ASan+UBSan
 * (Makefile: build/unit/). Prints "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../core/inject.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* An injector with no sockets: every packet stops at validation. */
static void closed(struct ld_inject *inj)
{
	memset(inj, 0, sizeof(*inj));
	inj->fd4 = inj->fd6 = -1;
}

static int refused(struct ld_inject *inj, const uint8_t *p, uint32_t len)
{
	errno = 0;
	return ld_inject_send(inj, p, len) == -1 && errno == EINVAL;
}

int main(void)
{
	struct ld_inject inj;
	uint8_t v4[64] = { 0x45, 0, 0, 28 };      /* IPv4, 20-byte header, total 28 */
	uint8_t v6[64] = { 0x60, 0, 0, 0, 0, 8 }; /* IPv6, 8 bytes of payload */
	uint8_t junk[64] = { 0x20 };              /* version 2 */

	closed(&inj);
	CHECK(refused(&inj, NULL, 40));
	CHECK(refused(&inj, v4, 19));                 /* shorter than any IP header */
	CHECK(refused(&inj, junk, sizeof(junk)));     /* neither IPv4 nor IPv6 */
	CHECK(refused(&inj, v4, 27));                 /* total length beyond the bytes */
	v4[0] = 0x44;                                 /* header length 16 < 20 */
	CHECK(refused(&inj, v4, 28));
	v4[0] = 0x4f;                                 /* header length 60 > total 28 */
	CHECK(refused(&inj, v4, 64));
	v4[0] = 0x45;
	CHECK(refused(&inj, v4, 28));                 /* valid, but no IPv4 socket */
	CHECK(refused(&inj, v6, 39));                 /* shorter than the IPv6 header */
	CHECK(refused(&inj, v6, 47));                 /* payload length beyond the bytes */
	CHECK(refused(&inj, v6, 48));                 /* valid, but no IPv6 socket */
	CHECK(inj.invalid == 10 && inj.sent == 0 && inj.failed == 0);
	CHECK(inj.last_errno == EINVAL);

	/* Failures are sorted by cause. */
	count_failure(&inj, EMSGSIZE);
	count_failure(&inj, ENOBUFS);
	count_failure(&inj, EAGAIN);
	count_failure(&inj, EPERM);
	CHECK(inj.failed == 4 && inj.too_big == 1 && inj.no_buffer == 2 && inj.last_errno == EPERM);

	/* Closing an injector that never opened is harmless. */
	ld_inject_close(&inj);
	CHECK(inj.fd4 == -1 && inj.fd6 == -1);

	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * rules_foreign_unit.c - which iptables-save lines send packets to a queue
 * (core/rules_foreign.c): --queue-num, --queue-balance ranges, no number
 * (queue 0), luadivert's own chains left out. Built with ASan+UBSan.
 * Prints "N passed, N failed".
 */
#include <stdio.h>

#include "../../core/log.c"
#include "../../core/rules_foreign.c"

/* ld_rules_warn_foreign() is not called here: stubs for what it links to. */
int ld_rules_read_saves(int backend, ld_rules_save_fn *fn, void *ctx, char *err, size_t errlen)
{
	(void)backend; (void)fn; (void)ctx; (void)err; (void)errlen;
	return -1;
}

const char *ld_rules_backend_name(int backend)
{
	return backend ? "legacy" : "nft";
}

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

int main(void)
{
	CHECK(ld_rules_line_queues("-A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass", 0));
	CHECK(!ld_rules_line_queues("-A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass", 1));
	CHECK(ld_rules_line_queues("-A OUTPUT -p udp -j NFQUEUE --queue-num 17", 17));
	CHECK(!ld_rules_line_queues("-A OUTPUT -p udp -j NFQUEUE --queue-num 17", 1));
	CHECK(ld_rules_line_queues("-A INPUT -j NFQUEUE", 0));
	CHECK(!ld_rules_line_queues("-A INPUT -j NFQUEUE", 3));
	CHECK(ld_rules_line_queues("-A FORWARD -j NFQUEUE --queue-balance 2:5", 4));
	CHECK(!ld_rules_line_queues("-A FORWARD -j NFQUEUE --queue-balance 2:5", 6));
	CHECK(!ld_rules_line_queues("-A LUADIVERT-Q0 -j NFQUEUE --queue-num 0 --queue-bypass", 0));
	CHECK(!ld_rules_line_queues("-A OUTPUT -j LUADIVERT-Q0", 0));
	CHECK(!ld_rules_line_queues("-A OUTPUT -p udp -j ACCEPT", 0));
	CHECK(!ld_rules_line_queues(":OUTPUT ACCEPT [0:0]", 0));
	CHECK(ld_rules_warn_foreign(0, 0) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * offload_unit.c - divert.OFFLOAD's translation (core/offload.c): NF_REPEAT
 * with the generation's mark bits, the policy's own mark kept, a packet
 * that came back passed (no loop), offload off; the generations wrap; the
 * rules rendered. Built with ASan+UBSan. Prints "N passed, N failed".
 */
#include <stdio.h>
#include <string.h>

#include "../../core/log.c"
#include "../../core/offload.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

int main(void)
{
	struct ld_packet p[5];
	struct ld_counters c;
	struct ld_log_limit lim;
	char buf[LD_OFFLOAD_RULES_MAX];

	memset(p, 0, sizeof p);
	memset(&c, 0, sizeof c);
	memset(&lim, 0, sizeof lim);
	p[0].verdict = LD_OFFLOAD; p[0].mark = 0x4c440007;          /* other bits (skip mark) kept */
	p[1].verdict = LD_OFFLOAD; p[1].set = LD_SET_MARK; p[1].new_mark = 0x12; /* set_mark too */
	p[2].verdict = LD_OFFLOAD; p[2].mark = 0x01800001;          /* came back: gen 3 */
	p[3].verdict = LD_PASS;    p[3].mark = 0x01800000;          /* untouched */
	p[4].verdict = LD_OFFLOAD; p[4].mark = 0x01000000;          /* an old generation */
	ld_offload_batch(p, 5, 3, &c, &lim);
	CHECK(p[0].verdict == LD_REPEAT && (p[0].set & LD_SET_MARK) && p[0].new_mark == 0x4dc40007);
	CHECK(p[1].verdict == LD_REPEAT && p[1].new_mark == 0x01800012);
	CHECK(p[2].verdict == LD_PASS && !(p[2].set & LD_SET_MARK));
	CHECK(p[3].verdict == LD_PASS && p[3].set == 0);
	CHECK(p[4].verdict == LD_REPEAT && p[4].new_mark == 0x01800000);
	CHECK(c.offloaded == 3 && c.offload_missed == 1);

	/* offload off (--no-offload): a plain pass, nothing counted */
	memset(p, 0, sizeof p);
	memset(&c, 0, sizeof c);
	p[0].verdict = LD_OFFLOAD;
	ld_offload_batch(p, 1, 0, &c, &lim);
	CHECK(p[0].verdict == LD_PASS && p[0].set == 0 && c.offloaded == 0 && c.offload_missed == 0);

	CHECK(ld_offload_gen_next(1) == 2 && ld_offload_gen_next(LD_OFFLOAD_GEN_MAX) == 1);
	CHECK(ld_offload_gen_next(0) == 0);
	CHECK(ld_offload_mark(LD_OFFLOAD_GEN_MAX) == LD_OFFLOAD_MARK_MASK);

	CHECK(ld_offload_render_rules("LUADIVERT-Q7", 2, buf, sizeof buf) == 0);
	CHECK(strstr(buf, "-A LUADIVERT-Q7 -m mark --mark 0x1000000/0x3800000 -j CONNMARK --save-mark "
			  "--nfmask 0x3800000 --ctmask 0x3800000\n") == buf);
	CHECK(strstr(buf, "-A LUADIVERT-Q7 -m mark --mark 0x1000000/0x3800000 -j MARK --set-xmark 0x0/0x3800000\n"));
	CHECK(strstr(buf, "-A LUADIVERT-Q7 -m connmark --mark 0x1000000/0x3800000 -j RETURN\n"));
	CHECK(ld_offload_render_rules("LUADIVERT-Q7", 0, buf, sizeof buf) < 0);
	CHECK(ld_offload_render_rules("LUADIVERT-Q7", 8, buf, sizeof buf) < 0);
	CHECK(ld_offload_render_rules("LUADIVERT-Q7", 1, buf, 20) < 0);
	ld_log_limit_flush(&lim);

	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}

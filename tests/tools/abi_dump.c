// SPDX-License-Identifier: MIT
/*
 * abi_dump.c - print what the C compiler thinks of the shared structs, as
 * "struct.field offset size" lines, for tests/lua/abi_test.lua to compare
 * with LuaJIT's ffi.offsetof/ffi.sizeof.
 */
#include <stddef.h>
#include <stdio.h>

#include "ld_abi.h"

#define FIELD(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), \
			   sizeof(((struct s *)0)->f))
#define SIZE(s) printf("%s %zu %zu\n", #s, (size_t)0, sizeof(struct s))
#define CONST(c) printf("%s 0 %d\n", #c, (int)(c))

int main(void)
{
	SIZE(ld_packet);
	FIELD(ld_packet, data);
	FIELD(ld_packet, len);
	FIELD(ld_packet, cap);
	FIELD(ld_packet, orig_len);
	FIELD(ld_packet, id);
	FIELD(ld_packet, mark);
	FIELD(ld_packet, ct_mark);
	FIELD(ld_packet, ct_info);
	FIELD(ld_packet, uid);
	FIELD(ld_packet, gid);
	FIELD(ld_packet, indev);
	FIELD(ld_packet, outdev);
	FIELD(ld_packet, hw_proto);
	FIELD(ld_packet, hook);
	FIELD(ld_packet, flags);
	FIELD(ld_packet, tstamp_ns);
	FIELD(ld_packet, verdict);
	FIELD(ld_packet, set);
	FIELD(ld_packet, new_mark);
	FIELD(ld_packet, new_ct_mark);
	FIELD(ld_packet, hold_ns);
	FIELD(ld_packet, dup);
	FIELD(ld_packet, reserved);
	SIZE(ld_batch);
	FIELD(ld_batch, pkts);
	FIELD(ld_batch, n);
	FIELD(ld_batch, next);
	FIELD(ld_batch, queue);
	FIELD(ld_batch, default_verdict);
	FIELD(ld_batch, now_ns);
	FIELD(ld_batch, metrics);
	SIZE(ld_pipe_metrics);
	FIELD(ld_pipe_metrics, name);
	FIELD(ld_pipe_metrics, packets);
	FIELD(ld_pipe_metrics, bytes);
	FIELD(ld_pipe_metrics, lost);
	FIELD(ld_pipe_metrics, delayed);
	FIELD(ld_pipe_metrics, delay_sum_s);
	FIELD(ld_pipe_metrics, delay_count);
	FIELD(ld_pipe_metrics, ring);
	FIELD(ld_pipe_metrics, ring_head);
	SIZE(ld_user_metric);
	FIELD(ld_user_metric, name);
	FIELD(ld_user_metric, labels);
	FIELD(ld_user_metric, kind);
	FIELD(ld_user_metric, value);
	SIZE(ld_metric_tables);
	FIELD(ld_metric_tables, npipes);
	FIELD(ld_metric_tables, nuser);
	FIELD(ld_metric_tables, delay_le_s);
	FIELD(ld_metric_tables, pipes);
	FIELD(ld_metric_tables, user);
	/* the values of the constants, which the Lua modules read from ffi.C */
	CONST(LD_BATCH_MAX);
	CONST(LD_PACKET_MAX);
	CONST(LD_PAYLOAD_MAX);
	CONST(LD_PIPES_MAX);
	CONST(LD_USER_METRICS_MAX);
	CONST(LD_DELAY_BUCKETS);
	CONST(LD_PIPE_RING);
	CONST(LD_DROP);
	CONST(LD_PASS);
	CONST(LD_QUEUE);
	CONST(LD_REPEAT);
	CONST(LD_PKT_GSO);
	CONST(LD_PKT_CSUM_NOTREADY);
	CONST(LD_PKT_HAS_UID);
	CONST(LD_PKT_HAS_GID);
	CONST(LD_PKT_HAS_CT);
	CONST(LD_PKT_TRUNCATED);
	CONST(LD_SET_MARK);
	CONST(LD_SET_CT_MARK);
	CONST(LD_SET_MODIFIED);
	CONST(LD_SET_HOLD);
	return 0;
}

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
	printf("LD_BATCH_MAX 0 %d\nLD_PACKET_MAX 0 %d\n", LD_BATCH_MAX, LD_PACKET_MAX);
	printf("LD_PIPES_MAX 0 %d\nLD_USER_METRICS_MAX 0 %d\nLD_DELAY_BUCKETS 0 %d\n"
	       "LD_PIPE_RING 0 %d\n", LD_PIPES_MAX, LD_USER_METRICS_MAX, LD_DELAY_BUCKETS,
	       LD_PIPE_RING);
	return 0;
}

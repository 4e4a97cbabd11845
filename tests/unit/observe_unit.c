// SPDX-License-Identifier: MIT
/*
 * observe_unit.c - the parts of issue 13 that need no network: the
 * Prometheus text the renderer writes, the verdict split, the pipe queue
 * length, size parsing, the record's comment text, and a record that does
 * not fit its ring (counted, never waited for).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/cli.c"
#include "../../core/counters.c"
#include "../../core/log.c"
#include "../../core/metrics_render.c"
#include "../../core/observe_cli.c"
#include "../../core/record_pcapng.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

static void test_render(void)
{
	static struct ld_metric_tables t;
	struct ld_counters c = { .received = 10, .passed = 7, .dropped = 3, .repeated = 1,
				 .queued = 2, .defaulted = 1, .held_now = 4 };
	struct ld_kernel_counters k = { .valid = 1, .queue_dropped = 5, .user_dropped = 6 };
	struct ld_metrics_source src = { .queue = 2, .default_verdict = LD_PASS, .c = &c, .k = &k,
					 .t = &t, .now_ns = 1000 };
	struct ld_buf b = { 0 };
	uint64_t v[LD_VERDICT_KINDS];

	ld_verdict_counts(&c, LD_PASS, v);
	CHECK(v[0] == 3 && v[1] == 3 && v[2] == 1 && v[3] == 2 && v[4] == 0 && v[5] == 1);
	CHECK(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] == c.received);
	ld_verdict_counts(&c, LD_DROP, v);
	CHECK(v[0] == 4 && v[1] == 2 && v[5] == 1);

	snprintf(t.pipes[0].name, sizeof(t.pipes[0].name), "up");
	t.pipes[0].packets = 9;
	t.pipes[0].delay_count[0] = 2;
	t.pipes[0].delay_count[LD_DELAY_BUCKETS - 1] = 1;
	t.pipes[0].ring[0] = 500;    /* released */
	t.pipes[0].ring[1] = 2000;   /* still held at now = 1000 */
	t.pipes[0].ring_head = 2;
	t.npipes = 1;
	for (int i = 0; i < LD_DELAY_BUCKETS; i++)
		t.delay_le_s[i] = 0.001 * (i + 1);
	snprintf(t.user[0].name, sizeof(t.user[0].name), "mine_total");
	snprintf(t.user[0].labels, sizeof(t.user[0].labels), "k=\"v\"");
	t.user[0].kind = LD_METRIC_COUNTER;
	t.user[0].value = 1.5;
	t.nuser = 1;
	CHECK(ld_pipe_queue_len(&t.pipes[0], 1000) == 1);

	ld_metrics_render(&b, &src, 1);
	CHECK(!b.failed && b.p);
	CHECK(strstr(b.p, "luadivert_packets_received_total{queue=\"2\"} 10\n") != NULL);
	CHECK(strstr(b.p, "luadivert_verdicts_total{queue=\"2\",verdict=\"default\"} 1\n") != NULL);
	CHECK(strstr(b.p, "luadivert_held_packets{queue=\"2\"} 4\n") != NULL);
	CHECK(strstr(b.p, "luadivert_kernel_user_dropped_total{queue=\"2\"} 6\n") != NULL);
	CHECK(strstr(b.p, "luadivert_pipe_packets_total{queue=\"2\",pipe=\"up\"} 9\n") != NULL);
	CHECK(strstr(b.p, "luadivert_pipe_queue_length{queue=\"2\",pipe=\"up\"} 1\n") != NULL);
	CHECK(strstr(b.p, "luadivert_pipe_delay_seconds_bucket{queue=\"2\",pipe=\"up\",le=\"+Inf\"} 3\n"));
	CHECK(strstr(b.p, "luadivert_pipe_delay_seconds_count{queue=\"2\",pipe=\"up\"} 3\n") != NULL);
	CHECK(strstr(b.p, "# TYPE mine_total counter\nmine_total{queue=\"2\",k=\"v\"} 1.5\n") != NULL);
	CHECK(strstr(b.p, "luadivert_batch_seconds_bucket{queue=\"2\",le=\"+Inf\"} 0\n") != NULL);
	/* every line is a comment or "name{labels} value" */
	{
		int ok = 1;

		for (char *l = b.p; *l; ) {
			char *nl = strchr(l, '\n');

			if (!nl || (l[0] != '#' && (!strchr(l, ' ') || strchr(l, ' ') > nl)))
				ok = 0;
			if (!nl)
				break;
			l = nl + 1;
		}
		CHECK(ok);
	}
	ld_buf_free(&b);
}

static void test_size(void)
{
	uint64_t v = 0;

	CHECK(ld_parse_size("64k", 0, &v) == 0 && v == 65536);
	CHECK(ld_parse_size("10M", 0, &v) == 0 && v == 10u << 20);
	CHECK(ld_parse_size("1G", 0, &v) == 0 && v == 1u << 30);
	CHECK(ld_parse_size("100MB", 0, &v) == 0 && v == 100u << 20);
	CHECK(ld_parse_size("123", 0, &v) == 0 && v == 123);
	CHECK(ld_parse_size("1k", 65536, &v) == -1);
	CHECK(ld_parse_size("-1", 0, &v) == -1);
	CHECK(ld_parse_size("1T", 0, &v) == -1);
	CHECK(ld_parse_size("", 0, &v) == -1);
	CHECK(ld_parse_size("99999999999999999999G", 0, &v) == -1);
}

static void test_record(void)
{
	char buf[128], path[] = "/tmp/observe_unit_XXXXXX";
	uint8_t pkt[1500] = { 0x45 };
	struct ld_record_pkt p = { .ts_ns = 1, .data = pkt, .len = sizeof(pkt),
				   .wire_len = sizeof(pkt), .verdict = LD_PASS };
	struct ld_record *r;
	uint64_t w = 0, d = 0;
	char err[256];
	int fd = mkstemp(path);

	ld_record_comment(buf, sizeof(buf), LD_QUEUE | (3u << 16), 20000000, 1);
	CHECK(strcmp(buf, "verdict=queue:3 hold_ms=20.000 modified=yes") == 0);
	ld_record_comment(buf, sizeof(buf), LD_DROP, 0, 0);
	CHECK(strcmp(buf, "verdict=drop hold_ms=0.000 modified=no") == 0);

	CHECK(fd >= 0);
	close(fd);
	r = ld_record_open(path, 0, 0, err, sizeof(err));
	CHECK(r != NULL);
	if (!r)
		return;
	/* far more than the ring holds, faster than any disk: some are counted, none blocks */
	for (int i = 0; i < 15000; i++)
		ld_record_packet(r, &p);
	CHECK(ld_record_close(r, &w, &d) == 0);
	CHECK(w + d == 15000);
	CHECK(w > 0);
	unlink(path);
}

int main(void)
{
	test_render();
	test_size();
	test_record();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

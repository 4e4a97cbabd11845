#!/bin/sh
# --metrics scraped by a real Prometheus server, inside the test's namespace:
# what its query API returns equals the traffic sent and what the receivers
# saw: packets passed, dropped, held by a named pipe, lost in a pipe, and a
# policy's own counter, which keep counting across a reload.
# (unix:PATH is tested by test_observe_record_report.sh, through `stats`.)
LDT_AREA=obs-prom
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/observe.sh"
require_root
require_cmd prometheus curl python3
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
PASS=300 DROP=200 HELD=100 LOST=50
TOTAL=$((PASS + DROP + HELD + LOST))

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000:9003 -j NFQUEUE --queue-num 0
ld_start "$NS" "$LDT_ROOT/tests/policies/observe_mix.lua" --queue 0 --metrics 127.0.0.1:9464
prom_start "$NS" 127.0.0.1:9464

# one receiver per port; those that must get nothing stop at their time limit
for p in 9000 9001 9002 9003; do
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port $p --idle-ms 1000 --time-limit 3 \
		--ready "$LDT_TMP/r$p.ready" >"$LDT_TMP/r$p.json"
	eval "RP$p=\$LDT_LAST_PID"
	wait_for_file "$LDT_TMP/r$p.ready" 5 || fail "udprecv $p did not start"
done
send() { ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port "$1" --count "$2" \
	--rate 20000 --time-limit 5 >/dev/null || fail "udpsend $1"; }
send 9000 $PASS; send 9001 $DROP; send 9002 $HELD; send 9003 $LOST
for p in 9000 9001 9002 9003; do
	eval "wait_for_exit \$RP$p 5"
done
check "receiver: all $PASS passed arrive" [ "$(json_get "$LDT_TMP/r9000.json" unique)" = $PASS ]
check "receiver: none of the dropped arrive" [ "$(json_get "$LDT_TMP/r9001.json" received)" = 0 ]
check "receiver: all $HELD held arrive" [ "$(json_get "$LDT_TMP/r9002.json" unique)" = $HELD ]
check "receiver: none of the pipe-lost arrive" [ "$(json_get "$LDT_TMP/r9003.json" received)" = 0 ]

# a reload: counted by result; named pipes and policy metrics keep their series
kill -HUP "$LD_PID"
wait_for_output "$LD_LOG" 'reloaded ' 10 || fail "the policy was not reloaded"
# wait for a scrape after the traffic and the reload, then read everything Prometheus holds
wait_until 15 prom_has "$NS" luadivert_reloads_total 1 result=ok ||
	log "Prometheus never showed the reload"
prom_dump "$NS" "$LDT_TMP/prom" || fail "query API"
v() { prom_value "$LDT_TMP/prom" "$@"; }
check "prometheus: received = $TOTAL" [ "$(v luadivert_packets_received_total queue=0)" = $TOTAL ]
check "prometheus: pass verdicts = $((PASS + HELD))" \
	[ "$(v luadivert_verdicts_total queue=0 verdict=pass)" = $((PASS + HELD)) ]
check "prometheus: drop verdicts = $((DROP + LOST))" \
	[ "$(v luadivert_verdicts_total queue=0 verdict=drop)" = $((DROP + LOST)) ]
check "prometheus: every verdict kind sums to received" [ "$(v luadivert_verdicts_total)" = $TOTAL ]
check "prometheus: held = $HELD" [ "$(v luadivert_packets_held_total queue=0)" = $HELD ]
check "prometheus: none held now" [ "$(v luadivert_held_packets queue=0)" = 0 ]
check "prometheus: pipe uplink delayed $HELD" [ "$(v luadivert_pipe_delayed_total pipe=uplink)" = $HELD ]
check "prometheus: pipe uplink in $HELD" [ "$(v luadivert_pipe_packets_total pipe=uplink)" = $HELD ]
check "prometheus: pipe lossy lost $LOST" [ "$(v luadivert_pipe_lost_total pipe=lossy)" = $LOST ]
check "prometheus: uplink's 20 ms delays: none <= 10 ms" \
	[ "$(v luadivert_pipe_delay_seconds_bucket pipe=uplink le=0.01)" = 0 ]
check "prometheus: uplink's 20 ms delays: all <= 20 ms" \
	[ "$(v luadivert_pipe_delay_seconds_bucket pipe=uplink le=0.02)" = $HELD ]
check "prometheus: policy counter, port 9001 = $DROP" [ "$(v observe_test_packets_total port=9001)" = $DROP ]
check "prometheus: policy gauge = 9003" [ "$(v observe_test_last_port)" = 9003 ]
check "prometheus: kernel dropped none" [ "$(v luadivert_kernel_queue_dropped_total)$(v luadivert_kernel_user_dropped_total)" = 00 ]
check "prometheus: batches counted" [ "$(v luadivert_batch_seconds_count queue=0)" -gt 0 ]
check "prometheus: reloads ok 1" [ "$(v luadivert_reloads_total result=ok)" = 1 ]
check "prometheus: reloads refused 0" [ "$(v luadivert_reloads_total result=error)" = 0 ]
check "prometheus: the target is up" [ "$(v up)" = 1 ]

# the text format itself
ns_exec "$NS" curl -sf http://127.0.0.1:9464/metrics >"$LDT_TMP/metrics.txt"
check "one TYPE line per family" sh -c \
	"[ \$(grep -c '^# TYPE luadivert_verdicts_total counter\$' '$LDT_TMP/metrics.txt') = 1 ]"
check "404 for another path" sh -c \
	"[ \"\$(ip netns exec '$NS' curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/x)\" = 404 ]"
ld_stop
check "luadivert exits 0" [ "$LD_RC" = 0 ]
check "the daemon's own counters agree: received $TOTAL" [ "$(ld_counter received)" = $TOTAL ]

ldt_done

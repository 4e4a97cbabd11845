#!/bin/sh
# ldt: serial (its checks measure delay, rate or loss statistics)
# Rate through shape.pipe on real traffic: a TCP transfer through a
# 2 Mbit/s pipe (a queue that delays packets to the rate, not a policer)
# reaches 2 Mbit/s within 10%, and the stream arrives intact; a UDP burst
# into a rate pipe with a 20-packet limit is tail-dropped to the limit.
LDT_AREA=shp-rate
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools tcpxfer udpsend udprecv
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0

shape_policy "$LDT_TMP/rate.lua" "rate = \"2mbit\", seed = 1"
shape_policy "$LDT_TMP/limit.lua" "rate = \"1mbit\", limit = 20, seed = 1"

# The data direction (A -> B) goes through the pipe; ACKs do not.
iptables_ns "$A" -A OUTPUT -p tcp --dport 9300 -j NFQUEUE --queue-num 0
iptables_ns "$A" -A OUTPUT -p udp --dport 9301 -j NFQUEUE --queue-num 0
ld_start "$A" "$LDT_TMP/rate.lua" --queue 0
BYTES=1250000   # 10 Mbit: 5 s at 2 Mbit/s
bg_ns "$B" "$LDT_TOOLS/tcpxfer" recv --port 9300 --ready "$LDT_TMP/recv.ready" --time-limit 40 \
	>"$LDT_TMP/recv.json"
RP=$LDT_LAST_PID
wait_for_file "$LDT_TMP/recv.ready" 5 || fail "tcpxfer recv did not start"
ns_exec "$A" "$LDT_TOOLS/tcpxfer" send --dst "$ADDR_B" --port 9300 --bytes $BYTES --seed 9 \
	--time-limit 40 >"$LDT_TMP/send.json" || fail "tcpxfer send"
wait "$RP"
ld_stop
MBPS=$(awk -v b="$(json_get "$LDT_TMP/recv.json" received)" -v t="$(json_get "$LDT_TMP/recv.json" elapsed_s)" \
	'BEGIN { printf "%.3f", b * 8 / t / 1e6 }')
HELD=$(ld_counter held)
log "TCP through rate = 2mbit: $(cat "$LDT_TMP/recv.json")"
check "TCP: the stream arrives intact" [ "$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$LDT_TMP/recv.json")" = \
	"$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$LDT_TMP/send.json")" ]
check "TCP: goodput $MBPS Mbit/s within 10% of 2 Mbit/s" within "$MBPS" 1.8 2.2
all_held() { [ "$HELD" -gt 0 ] && [ "$HELD" = "$(ld_counter received)" ]; }
check "TCP: every packet was held (a queue, not a policer): $HELD" all_held
check "TCP: nothing dropped" [ "$(ld_counter dropped)" = 0 ]

# Tail drop: 200 datagrams of 1028 bytes (IP) at once into 1 Mbit/s with a
# 20-packet limit: 20 fit in the queue (plus the few that left meanwhile:
# one per 8 ms if the sender gets descheduled mid-burst).
ld_start "$A" "$LDT_TMP/limit.lua" --queue 0
udp_run_b() {
	rm -f "$LDT_TMP/u.ready"
	bg_ns "$B" "$LDT_TOOLS/udprecv" --port 9301 --count 200 --idle-ms 1500 --time-limit 30 \
		--ready "$LDT_TMP/u.ready" >"$LDT_TMP/u.json"
	UR=$LDT_LAST_PID
	wait_for_file "$LDT_TMP/u.ready" 5 || fail "udprecv did not start"
	ns_exec "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port 9301 --count 200 --size 1000 \
		--rate 0 --time-limit 10 >/dev/null || fail "udpsend"
	wait "$UR"
}
udp_run_b
ld_stop
GOT=$(json_get "$LDT_TMP/u.json" unique)
log "limit 20: $GOT of 200 arrived, daemon dropped $(ld_counter dropped)"
check "limit: about 20 of a 200-datagram burst get through ($GOT)" within "$GOT" 20 40
check "limit: the rest is tail-dropped by the pipe" [ "$(ld_counter dropped)" = $((200 - GOT)) ]
ldt_done

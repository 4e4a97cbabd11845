#!/bin/sh
# ldt: serial (its checks measure delay, rate or loss statistics)
# Delay through shape.pipe on real traffic: a 100 ms pipe on the requests of
# a UDP ping adds 100 ms to the round-trip time (median within a few ms),
# for IPv4 and IPv6; jitter stays inside delay +- jitter; and packets keep
# their order (no reordering unless asked).
LDT_AREA=shp-delay
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpping udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS

shape_policy "$LDT_TMP/delay.lua" "delay = 100, seed = 1"
shape_policy "$LDT_TMP/jitter.lua" "delay = 30, jitter = 20, distribution = \"normal\", seed = 7"

bg_ns "$NS" "$LDT_TOOLS/udpping" server --port 9100 --ready "$LDT_TMP/srv.ready" --time-limit 120
wait_for_file "$LDT_TMP/srv.ready" 5 || fail "udpping server did not start"
ping() {  # ping DST OUT: 300 requests at 100/s
	ns_exec "$NS" "$LDT_TOOLS/udpping" client --dst "$1" --port 9100 --count 300 --rate 100 \
		--wait-ms 1000 --time-limit 30 >"$2" || fail "udpping client"
}
# added_ms BASE DELAYED: difference of the median RTTs in ms
added_ms() { awk -v a="$(json_get "$1" rtt_us_p50)" -v b="$(json_get "$2" rtt_us_p50)" \
	'BEGIN { printf "%.3f", (b - a) / 1000 }'; }

ping 127.0.0.1 "$LDT_TMP/base4.json"
ping ::1 "$LDT_TMP/base6.json"

# Only the requests are queued (destination port 9100), so the RTT grows by
# one delay. Held at output, they are taken over and their copies sent with
# the skip mark: these rules skip it, as the rules luadivert installs do.
SKIP="-m mark ! --mark 0x4c440000/0x4c440000"
iptables_ns "$NS" -A OUTPUT -p udp --dport 9100 $SKIP -j NFQUEUE --queue-num 0
ip6tables_ns "$NS" -A OUTPUT -p udp --dport 9100 $SKIP -j NFQUEUE --queue-num 0
ld_start "$NS" "$LDT_TMP/delay.lua" --queue 0
ping 127.0.0.1 "$LDT_TMP/d4.json"
ping ::1 "$LDT_TMP/d6.json"
ld_stop
A4=$(added_ms "$LDT_TMP/base4.json" "$LDT_TMP/d4.json")
A6=$(added_ms "$LDT_TMP/base6.json" "$LDT_TMP/d6.json")
log "IPv4: median RTT $(json_get "$LDT_TMP/base4.json" rtt_us_p50) -> $(json_get "$LDT_TMP/d4.json" rtt_us_p50) us (+$A4 ms), p99 $(json_get "$LDT_TMP/d4.json" rtt_us_p99) us"
log "IPv6: median RTT $(json_get "$LDT_TMP/base6.json" rtt_us_p50) -> $(json_get "$LDT_TMP/d6.json" rtt_us_p50) us (+$A6 ms)"
check "IPv4: all 300 answered" [ "$(json_get "$LDT_TMP/d4.json" received)" = 300 ]
check "IPv4: delay 100 ms adds 100 ms to the median RTT (+$A4 ms)" within "$A4" 99 104
check "IPv4: no RTT below 100 ms" within "$(json_get "$LDT_TMP/d4.json" rtt_us_max)" 100000 1e9
check "IPv6: delay 100 ms adds 100 ms to the median RTT (+$A6 ms)" within "$A6" 99 104
check "daemon held every packet" [ "$(ld_counter held)" = 600 ]
check "no handler errors" [ "$(ld_counter errors)" = 0 ]

# Jitter, 30 +- 20 ms normal, 2000 datagrams at 1000/s. In order (the
# default), a packet waits for any slower one ahead of it, so delays only
# grow: none below 10 ms (30 - 20, the bulk), none above 30 + 4 * 20 ms
# (netem's clip) plus scheduling slack (50 ms: a busy 2-core VM), no reordering.
iptables_ns "$NS" -F OUTPUT
iptables_ns "$NS" -A OUTPUT -p udp --dport 9101 $SKIP -j NFQUEUE --queue-num 0
ld_start "$NS" "$LDT_TMP/jitter.lua" --queue 0
udp_run "$NS" 127.0.0.1 9101 2000 "$LDT_TMP/j.json" --rate 1000
ld_stop
log "jitter, in order: $(cat "$LDT_TMP/j.json")"
check "jitter: all 2000 arrive" [ "$(json_get "$LDT_TMP/j.json" unique)" = 2000 ]
check "jitter: none out of order (FIFO)" [ "$(json_get "$LDT_TMP/j.json" out_of_order)" = 0 ]
check "jitter: median one-way delay above 30 ms" within "$(json_get "$LDT_TMP/j.json" lat_us_p50)" 30000 110000
check "jitter: max one-way delay within 110 ms + slack" within "$(json_get "$LDT_TMP/j.json" lat_us_max)" 0 160000

# fifo = false: each packet keeps its own delay (netem's behaviour), so the
# median is the requested 30 ms and jitter reorders packets.
sed 's/seed = 7/seed = 7, fifo = false/' "$LDT_TMP/jitter.lua" >"$LDT_TMP/jitter_nofifo.lua"
ld_start "$NS" "$LDT_TMP/jitter_nofifo.lua" --queue 0
udp_run "$NS" 127.0.0.1 9101 2000 "$LDT_TMP/jn.json" --rate 1000
ld_stop
log "jitter, fifo = false: $(cat "$LDT_TMP/jn.json")"
check "fifo = false: all 2000 arrive" [ "$(json_get "$LDT_TMP/jn.json" unique)" = 2000 ]
check "fifo = false: median one-way delay 30 ms (+- 3)" within "$(json_get "$LDT_TMP/jn.json" lat_us_p50)" 27000 33000
check "fifo = false: packets overtake each other" within "$(json_get "$LDT_TMP/jn.json" out_of_order)" 100 2000
ldt_done

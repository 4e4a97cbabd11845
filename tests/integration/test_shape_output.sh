#!/bin/sh
# ldt: serial (its first check compares TCP throughput at output and input)
# Shaping the host's own traffic (issue 17). A held packet of local origin
# is taken over: copied, the original dropped at once (freeing its socket's
# memory), the copy sent at release through the raw socket, segmented to
# the MTU when it is a GSO packet (core/hold_takeover.h). Two namespaces,
# A sends to B over a veth; luadivert installs its own rules (--hook,
# --filter), as a user would run it.
#  1. TCP upload through 50 ms at A's output vs the same pipe at B's input:
#     comparable throughput (before: 0.5 vs 563 Mbit/s), streams intact
#     (hash) for IPv4 and IPv6, and GSO packets were cut in software.
#  2. UDP at 50 Mbit/s through 100 ms at output: the sender is not blocked
#     (all sent within the time limit) and >= 99% arrive.
#  3. SNAT in postrouting applies to delayed packets, each seen once.
#  4. duplicate and reorder at output; 5. SIGTERM with copies held: each
#     sent exactly once (release), or none (drop), counted.
# Also: a rule of someone else's feeding the same queue is named at start.
LDT_AREA=shp-out
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools tcpxfer udpsend udprecv
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0

shape_policy "$LDT_TMP/d50.lua" "delay = 50, seed = 1"
shape_policy "$LDT_TMP/d100.lua" "delay = 100, seed = 1"
shape_policy "$LDT_TMP/d20.lua" "delay = 20, seed = 1"
shape_policy "$LDT_TMP/dup.lua" "delay = 10, duplicate = 1, seed = 1"
shape_policy "$LDT_TMP/reorder.lua" "delay = 30, reorder = 0.3, seed = 2"
shape_policy "$LDT_TMP/long.lua" "delay = 5000, seed = 1"

# ld_run NS POLICY ARGS...: luadivert with the rules it installs itself.
ld_run() {
	_ns=$1; _pol=$2; shift 2
	LD_N=$((LD_N + 1))
	LD_LOG="$LDT_TMP/luadivert.$LD_N.log"
	bg_ns "$_ns" "$LUADIVERT" run "$_pol" --queue 0 --pidfile "$LDT_TMP/ld.$LD_N.pid" "$@" \
		>"$LD_LOG" 2>&1
	LD_PID=$LDT_LAST_PID
	# bound first, then the rules: wait for both
	wait_for_output "$LD_LOG" 'diverting' 10 || { cat "$LD_LOG" >&2; fail "luadivert did not start"; }
}
# xfer DST BYTES OUT: tcpxfer from A to DST (in B), port 5201
xfer() {
	rm -f "$3.ready"
	bg_ns "$B" "$LDT_TOOLS/tcpxfer" recv --port 5201 --ready "$3.ready" --time-limit 30 >"$3.recv"
	_rp=$LDT_LAST_PID
	wait_for_file "$3.ready" 5 || fail "tcpxfer recv did not start"
	ns_exec "$A" "$LDT_TOOLS/tcpxfer" send --dst "$1" --port 5201 --bytes "$2" --seed 5 \
		--time-limit 30 >"$3.send" || fail "tcpxfer send to $1"
	wait "$_rp"
	log "$1: $(cat "$3.recv")"
}
same_hash() { [ -n "$(json_hash "$1.send")" ] && [ "$(json_hash "$1.send")" = "$(json_hash "$1.recv")" ]; }
positive() { [ "${1:-0}" -gt 0 ]; }

# 1. TCP. 25 MB is about a second at the rates this VM reaches.
BYTES=25000000
ld_run "$A" "$LDT_TMP/d50.lua" --hook output --filter "tcp dst port 5201"
xfer "$ADDR_B" $BYTES "$LDT_TMP/out4"
xfer "$ADDR6_B" $BYTES "$LDT_TMP/out6"
ld_stop
log "output: $(grep 'received [0-9]' "$LD_LOG")"
check "output, IPv4: all bytes arrive, hash equal" same_hash "$LDT_TMP/out4"
check "output, IPv6: all bytes arrive, hash equal" same_hash "$LDT_TMP/out6"
check "output: held packets were taken over ($(ld_counter taken))" positive "$(ld_counter taken)"
check "output: GSO packets were segmented ($(ld_counter segments) segments)" positive "$(ld_counter segments)"
check "output: no send or handler errors" [ "$(ld_counter inject_errors)$(ld_counter errors)$(ld_counter copy_overflow)" = 000 ]
check "output: our copies were not queued again" [ "$(ld_counter requeued)" = 0 ]
# A rule of someone else's already feeding queue 0 (it matches nothing here):
# luadivert names it at start.
iptables_ns "$B" -A FORWARD -p udp --dport 9 -j NFQUEUE --queue-num 0
ld_run "$B" "$LDT_TMP/d50.lua" --hook input --filter "tcp dst port 5201"
xfer "$ADDR_B" $BYTES "$LDT_TMP/in4"
ld_stop
check "start: the other rule feeding queue 0 is named" \
	grep -q "another rule already sends packets here.*-A FORWARD -p udp .*--dport 9 -j NFQUEUE" "$LD_LOG"
check "start: luadivert's own rules are not reported" [ "$(grep -c 'another rule' "$LD_LOG")" = 1 ]
check "input, IPv4: all bytes arrive, hash equal" same_hash "$LDT_TMP/in4"
# The issue's goal: the upload through 50 ms at output reaches >= 0.8 of the
# same pipe at input (before the take-over: 0.001; bench/shape_egress.sh
# checks >= 0.9 on an idle machine). One short transfer on a shared VM can
# lose to a stall, so up to two more output/input pairs are measured, back
# to back, when the first falls short; every pair is logged. The sanitized
# build pays for every byte it copies and sums at output (segmentation,
# checksums), not at input: 0.2 there.
MIN=0.8
case "$LUADIVERT" in *asan*) MIN=0.2 ;; esac
ratio_of() {  # ratio_of OUT IN: output Mbit/s / input Mbit/s
	awk -v o="$(json_get "$1.recv" mbps)" -v i="$(json_get "$2.recv" mbps)" \
		'BEGIN { printf "%.2f", (i > 0 ? o / i : 0) }'
}
RATIO=$(ratio_of "$LDT_TMP/out4" "$LDT_TMP/in4")
RATIOS=$RATIO
for try in 2 3; do
	within "$RATIO" "$MIN" 100 && break
	ld_run "$A" "$LDT_TMP/d50.lua" --hook output --filter "tcp dst port 5201"
	xfer "$ADDR_B" $BYTES "$LDT_TMP/out4.$try"
	ld_stop
	ld_run "$B" "$LDT_TMP/d50.lua" --hook input --filter "tcp dst port 5201"
	xfer "$ADDR_B" $BYTES "$LDT_TMP/in4.$try"
	ld_stop
	RATIO=$(ratio_of "$LDT_TMP/out4.$try" "$LDT_TMP/in4.$try")
	RATIOS="$RATIOS $RATIO"
done
log "TCP through 50 ms, output/input ratio of each pair: $RATIOS"
check "output throughput >= $MIN of input (pairs: $RATIOS)" within "$RATIO" "$MIN" 100

# 2. UDP at 50 Mbit/s (5000 x 1250-byte IP packets/s) through 100 ms, 2 s.
# A blocked sender (its socket charged for every held packet) would not get
# all 10000 out before its 6 s limit.
ld_run "$A" "$LDT_TMP/d100.lua" --hook output --filter "udp dst port 9701"
UDP_SEND_NS=$A UDP_WAIT=3 udp_run "$B" "$ADDR_B" 9701 10000 "$LDT_TMP/u50.json" \
	--rate 5000 --size 1222 --time-limit 6
ld_stop
log "UDP 50 Mbit/s: sent $(cat "$LDT_TMP/u50.json.sent"), received $(cat "$LDT_TMP/u50.json")"
check "UDP: the sender sent all 10000 within its time limit" [ "$(json_get "$LDT_TMP/u50.json.sent" sent)" = 10000 ]
check "UDP: >= 99% arrive ($(json_get "$LDT_TMP/u50.json" unique))" within "$(json_get "$LDT_TMP/u50.json" unique)" 9900 10000
check "UDP: each arrives once" [ "$(json_get "$LDT_TMP/u50.json" duplicates)" = 0 ]
check "UDP: arrival 100 ms late (median one-way delay)" within "$(json_get "$LDT_TMP/u50.json" lat_us_p50)" 100000 200000

# 3. SNAT in A's postrouting; B counts by source address.
ip -n "$A" addr add 198.18.0.9/32 dev "$VETH_A" || fail "extra address"
iptables_ns "$A" -t nat -A POSTROUTING -p udp --dport 9702 -j SNAT --to-source 198.18.0.9
iptables_ns "$B" -A INPUT -p udp --dport 9702 -s 198.18.0.9
iptables_ns "$B" -A INPUT -p udp --dport 9702 -s "$ADDR_A"
ld_run "$A" "$LDT_TMP/d20.lua" --hook postrouting --filter "udp dst port 9702" --family 4
UDP_SEND_NS=$A udp_run "$B" "$ADDR_B" 9702 300 "$LDT_TMP/snat.json" --rate 2000
ld_stop
from() {  # packets counted by B's INPUT rule for source $1
	ip netns exec "$B" iptables -w -nvxL INPUT |
		awk -v s="$1" '{ for (i = 3; i <= NF; i++) if ($i == s) { print $1; exit } }'
}
log "SNAT: $(cat "$LDT_TMP/snat.json"); from .9: $(from 198.18.0.9), from $ADDR_A: $(from "$ADDR_A")"
check "SNAT: all 300 arrive once" [ "$(json_get "$LDT_TMP/snat.json" unique)/$(json_get "$LDT_TMP/snat.json" received)" = 300/300 ]
check "SNAT: every one with the translated source" [ "$(from 198.18.0.9)/$(from "$ADDR_A")" = 300/0 ]
check "SNAT: every one was taken over and delayed ($(ld_counter taken))" [ "$(ld_counter taken)" = 300 ]

# 4. Duplicate and reorder at output.
ld_run "$A" "$LDT_TMP/dup.lua" --hook output --filter "udp dst port 9703"
UDP_SEND_NS=$A udp_run "$B" "$ADDR_B" 9703 400 "$LDT_TMP/dup.json" --rate 2000 --count 200
ld_stop
check "duplicate: 200 unique, each twice" [ "$(json_get "$LDT_TMP/dup.json" unique)/$(json_get "$LDT_TMP/dup.json" duplicates)" = 200/200 ]
ld_run "$A" "$LDT_TMP/reorder.lua" --hook output --filter "udp dst port 9704"
UDP_SEND_NS=$A udp_run "$B" "$ADDR_B" 9704 300 "$LDT_TMP/ro.json" --rate 1000
ld_stop
log "reorder: $(cat "$LDT_TMP/ro.json")"
check "reorder: all 300 arrive once" [ "$(json_get "$LDT_TMP/ro.json" unique)/$(json_get "$LDT_TMP/ro.json" duplicates)" = 300/0 ]
check "reorder: some overtake others" within "$(json_get "$LDT_TMP/ro.json" out_of_order)" 1 300

# 5. SIGTERM with 100 copies held for 5 s: released once each, or dropped.
held_then_stop() {  # held_then_stop PORT OUT [luadivert args]
	_p=$1; _o=$2; shift 2
	ld_run "$A" "$LDT_TMP/long.lua" --hook output --filter "udp dst port $_p" "$@"
	rm -f "$_o.ready"
	bg_ns "$B" "$LDT_TOOLS/udprecv" --port "$_p" --count 200 --idle-ms 1000 --time-limit 20 \
		--ready "$_o.ready" >"$_o"
	_rp=$LDT_LAST_PID
	wait_for_file "$_o.ready" 5 || fail "udprecv did not start"
	ns_exec "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port "$_p" --count 100 --rate 2000 \
		--time-limit 5 >/dev/null || fail "udpsend"
	ld_stop
	kill -TERM "$_rp" 2>/dev/null
	wait "$_rp"
}
held_then_stop 9705 "$LDT_TMP/term.json"
log "SIGTERM, release: $(cat "$LDT_TMP/term.json")"
check "SIGTERM, release: each held copy sent exactly once" [ "$(json_get "$LDT_TMP/term.json" unique)/$(json_get "$LDT_TMP/term.json" received)" = 100/100 ]
check "SIGTERM, release: counted as passed" [ "$(ld_counter passed)/$(ld_counter taken)" = 100/100 ]
check "SIGTERM, release: exit status 0" [ "$LD_RC" = 0 ]
held_then_stop 9706 "$LDT_TMP/termd.json" --held-on-exit drop
check "SIGTERM, drop: none sent" [ "$(json_get "$LDT_TMP/termd.json" received)" = 0 ]
check "SIGTERM, drop: counted as dropped" [ "$(ld_counter dropped)" = 100 ]
ldt_done

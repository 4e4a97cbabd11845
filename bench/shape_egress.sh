#!/bin/sh
# bench/shape_egress.sh - shaping the host's own traffic (issue 17): TCP
# through luadivert pipes at the SENDER's output hook, where held packets
# are taken over (copied, original dropped, copy sent at release), against
# the same pipe at the RECEIVER's input hook (zero-copy hold), in one run.
#
#   in_mbps     iperf3 A -> B, shape.pipe{delay = 50} at B's input
#   out_mbps    the same pipe at A's output
#   rate_mbps   shape.pipe{rate = "100mbit"} at A's output (goodput; the
#               pipe counts IP bytes, so the TCP/IP headers take ~3.5%)
# Each is the median of EGRESS_RUNS iperf3 runs of EGRESS_S seconds.
# Prints "key value" lines (egress.*) for bench/report.py, which turns them
# into a table and the goals: out/in >= 0.9, rate within 5% of 100 Mbit/s.
#
# Root; everything happens in namespaces this script creates and deletes.
# Knobs: EGRESS_S=3 EGRESS_RUNS=3 LUADIVERT=./luadivert
LDT_AREA=bench-egress
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
. "$LDT_ROOT/tests/lib/shape.sh"
require_root
require_cmd iperf3
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"
ldt_tmpdir
S=${EGRESS_S:-3}
RUNS=${EGRESS_RUNS:-3}
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 2
shape_policy "$LDT_TMP/delay.lua" "delay = 50, seed = 1"
shape_policy "$LDT_TMP/rate.lua" "rate = \"100mbit\", seed = 1"

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# measure KEY NS POLICY HOOK: luadivert (its own rules) in NS, RUNS iperf3 runs
measure() {
	_key=$1; _ns=$2; _pol=$3; _hook=$4
	bg_ns "$_ns" "$LUADIVERT" run "$_pol" --queue 0 --hook "$_hook" --filter "tcp dst port 5201" \
		--pidfile "$LDT_TMP/$_key.pid" >"$LDT_TMP/$_key.log" 2>&1
	_ld=$LDT_LAST_PID
	# bound first, then the rules: wait for both
	wait_for_output "$LDT_TMP/$_key.log" 'diverting' 10 ||
		{ cat "$LDT_TMP/$_key.log" >&2; fail "luadivert did not start"; }
	: >"$LDT_TMP/$_key.runs"
	_i=0
	while [ $_i -lt "$RUNS" ]; do
		bg_ns "$B" iperf3 -s -1 -p 5201 -B "$ADDR_B" >/dev/null 2>&1
		_srv=$LDT_LAST_PID
		wait_for_port "$B" tcp 5201 5 || fail "iperf3 server did not start"
		ns_exec "$A" timeout $((S + 20)) iperf3 -c "$ADDR_B" -p 5201 -t "$S" -J \
			>"$LDT_TMP/iperf.json" 2>&1 || { cat "$LDT_TMP/iperf.json" >&2; fail "iperf3 ($_key)"; }
		awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ {
			gsub(/[^0-9.e+]/, "", $2); printf "%.1f\n", $2 / 1e6; exit }' \
			"$LDT_TMP/iperf.json" >>"$LDT_TMP/$_key.runs"
		bg_stop "$_srv"
		_i=$((_i + 1))
	done
	bg_stop "$_ld" TERM 20
	log "$_key: $(tr '\n' ' ' <"$LDT_TMP/$_key.runs")Mbit/s; $(grep 'received [0-9]' "$LDT_TMP/$_key.log" | tail -n 1)"
	printf 'egress.%s %s\n' "$_key" "$(median <"$LDT_TMP/$_key.runs")"
}
measure in_mbps "$B" "$LDT_TMP/delay.lua" input
measure out_mbps "$A" "$LDT_TMP/delay.lua" output
measure rate_mbps "$A" "$LDT_TMP/rate.lua" output
printf 'egress.seconds %s\negress.runs %s\n' "$S" "$RUNS"

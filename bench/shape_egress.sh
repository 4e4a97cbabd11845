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
#   3g_up_mbps, 3g_down_mbps, sat_up_mbps, sat_down_mbps
#               scripts/examples/shape_3g.lua and shape_satellite.lua run
#               in A as a user would (both hooks, its own rules), one
#               iperf3 run of EGRESS_EX_S seconds each way after
#               EGRESS_EX_OMIT seconds left out (slow start over a 600 ms
#               round trip overshoots the queue, and TCP takes seconds to
#               recover): the steady rate. The upload leaves through A's
#               output, the download comes in at A's input.
# Prints "key value" lines (egress.*) for bench/report.py, which turns them
# into a table and the goals: out/in >= 0.9, rate within 5% of 100 Mbit/s.
#
# Root; everything happens in namespaces this script creates and deletes.
# Knobs: EGRESS_S=3 EGRESS_RUNS=3 EGRESS_EX_S=20 EGRESS_EX_OMIT=8 LUADIVERT=./luadivert
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
# example KEY POLICY [IPERF3 OPTIONS]: the example in A, one upload and one download
example() {
	_key=$1; _pol=$2; shift 2
	bg_ns "$A" "$LUADIVERT" run "$_pol" --queue 0 --filter "tcp port 5201" --hold-max 32768 \
		--pidfile "$LDT_TMP/$_key.pid" >"$LDT_TMP/$_key.log" 2>&1
	_ld=$LDT_LAST_PID
	wait_for_output "$LDT_TMP/$_key.log" 'diverting' 10 ||
		{ cat "$LDT_TMP/$_key.log" >&2; fail "luadivert did not start"; }
	for _dir in up down; do
		bg_ns "$B" iperf3 -s -1 -p 5201 -B "$ADDR_B" >/dev/null 2>&1
		_srv=$LDT_LAST_PID
		wait_for_port "$B" tcp 5201 5 || fail "iperf3 server did not start"
		_r=""; [ $_dir = down ] && _r=-R
		ns_exec "$A" timeout $((EX_S + EX_OMIT + 30)) iperf3 -c "$ADDR_B" -p 5201 -t "$EX_S" -O "$EX_OMIT" $_r "$@" -J \
			>"$LDT_TMP/iperf.json" 2>&1 || { cat "$LDT_TMP/iperf.json" >&2; fail "iperf3 ($_key $_dir)"; }
		_m=$(awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ {
			gsub(/[^0-9.e+]/, "", $2); printf "%.3f\n", $2 / 1e6; exit }' "$LDT_TMP/iperf.json")
		bg_stop "$_srv"
		log "$_key $_dir: $_m Mbit/s"
		printf 'egress.%s_%s_mbps %s\n' "$_key" "$_dir" "$_m"
	done
	bg_stop "$_ld" TERM 20
	log "$_key: $(grep 'received [0-9]' "$LDT_TMP/$_key.log" | tail -n 1)"
}
EX_S=${EGRESS_EX_S:-20}
EX_OMIT=${EGRESS_EX_OMIT:-8}
measure in_mbps "$B" "$LDT_TMP/delay.lua" input
measure out_mbps "$A" "$LDT_TMP/delay.lua" output
measure rate_mbps "$A" "$LDT_TMP/rate.lua" output
example 3g "$LDT_ROOT/scripts/examples/shape_3g.lua"
example sat "$LDT_ROOT/scripts/examples/shape_satellite.lua"
printf 'egress.seconds %s\negress.runs %s\negress.ex_seconds %s\negress.ex_omit %s\n' \
	"$S" "$RUNS" "$EX_S" "$EX_OMIT"

#!/bin/sh
# bench/offload_bench.sh - bulk TCP with divert.OFFLOAD (issue 16) against no
# queue at all, in one run: iperf3 A -> B over a veth, with luadivert at B's
# input diverting the iperf3 port (its own rules, bench/policies/offload.lua:
# every connection is offloaded at its first packet), and without anything.
# The runs alternate (none, offload, none, ...) so a slow moment of the
# (shared) machine hits both.
#
#   offload.none_mbps   median iperf3 throughput, no queue
#   offload.ld_mbps     the same with luadivert offloading
#   offload.received    packets luadivert saw over all its runs (a few per
#                       connection: iperf3 opens a control and a data one)
# Prints "key value" lines for bench/report.py: goal ld/none >= 0.95.
#
# Root; everything happens in namespaces this script creates and deletes.
# Knobs: OFFLOAD_S=2 OFFLOAD_RUNS=5 LUADIVERT=./luadivert
LDT_AREA=bench-offload
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
require_root
require_cmd iperf3
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"
ldt_tmpdir
S=${OFFLOAD_S:-2}
RUNS=${OFFLOAD_RUNS:-5}
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 3

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# iperf_once OUT: one iperf3 run A -> B, Mbit/s appended to OUT
iperf_once() {
	bg_ns "$B" iperf3 -s -1 -p 5201 -B "$ADDR_B" >/dev/null 2>&1
	_srv=$LDT_LAST_PID
	wait_for_port "$B" tcp 5201 5 || fail "iperf3 server did not start"
	ns_exec "$A" timeout $((S + 20)) iperf3 -c "$ADDR_B" -p 5201 -t "$S" -J \
		>"$LDT_TMP/iperf.json" 2>&1 || { cat "$LDT_TMP/iperf.json" >&2; fail "iperf3"; }
	awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ {
		gsub(/[^0-9.e+]/, "", $2); printf "%.1f\n", $2 / 1e6; exit }' "$LDT_TMP/iperf.json" >>"$1"
	bg_stop "$_srv"
}

: >"$LDT_TMP/none"; : >"$LDT_TMP/ld"
LOG="$LDT_TMP/ld.log"
bg_ns "$B" "$LUADIVERT" run bench/policies/offload.lua --queue 0 --hook input \
	--filter "tcp port 5201" --pidfile "$LDT_TMP/ld.pid" >"$LOG" 2>&1
LD=$LDT_LAST_PID
wait_for_output "$LOG" 'diverting' 10 || { cat "$LOG" >&2; fail "luadivert did not start"; }
# "none": the same namespaces with luadivert's chain bypassed by a rule in
# front of its jump (iptables -I puts it first), so nothing else differs
off() { iptables_ns "$B" -t mangle -I INPUT -p tcp --dport 5201 -j ACCEPT; }
on() { iptables_ns "$B" -t mangle -D INPUT -p tcp --dport 5201 -j ACCEPT; }
i=0
while [ $i -lt "$RUNS" ]; do
	off; iperf_once "$LDT_TMP/none"; on
	iperf_once "$LDT_TMP/ld"
	i=$((i + 1))
done
kill -USR1 "$LD"
sleep 0.3
bg_stop "$LD" TERM 20
log "none: $(tr '\n' ' ' <"$LDT_TMP/none")Mbit/s; offload: $(tr '\n' ' ' <"$LDT_TMP/ld")Mbit/s"
log "$(grep 'received [0-9]' "$LOG" | tail -n 1 | cut -c1-200)"
printf 'offload.none_mbps %s\n' "$(median <"$LDT_TMP/none")"
printf 'offload.ld_mbps %s\n' "$(median <"$LDT_TMP/ld")"
printf 'offload.received %s\n' "$(grep 'received [0-9]' "$LOG" | tail -n 1 | sed 's/.* received \([0-9]*\) .*/\1/')"
printf 'offload.runs %s\noffload.seconds %s\n' "$RUNS" "$S"

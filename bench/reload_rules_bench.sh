#!/bin/sh
# bench/reload_rules_bench.sh - what a reload costs when it swaps the divert
# rules too (issue 18).
#
# While UDP flows at 5,000 packets/s through the queue (diverted by the
# policy's own rules), 10 reloads of each kind:
#   code     only the code changes: no iptables tool runs
#   filter   the filter changes (IPv4 only): one iptables-restore
#   both     filter and hooks change for both families: two iptables-restore
# It prints the reload times luadivert logs (min / median / max, ms) and
# the worst one-way latency of the stream (the queue is not read while a
# reload runs). Goal lines: nothing lost; a rule swap under 100 ms median
# (fork+exec of iptables-nft-restore dominates; machine load shows here).
# Root; in a namespace it creates and removes.
LDT_AREA=bench-rrules
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
T=$LDT_TMP
ns_create a; NS=$LDT_NS
P="$T/policy.lua"
ROUNDS=10

# write FILTER HOOK FAMILY TAG: a passing policy declaring these rules
write() {
	printf 'local divert = require "divert"\nreturn { filter = "%s", hook = %s, family = %s,\n  on_packet = function () return divert.PASS end } -- %s\n' \
		"$1" "$2" "$3" "$4" >"$P.new"
	mv "$P.new" "$P"
}

# stats: min / median / max of the numbers on stdin
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f / %.1f / %.1f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }

write "udp dst port 9000" '"output"' 4 start
bg_ns "$NS" "$LUADIVERT" run "$P" --pidfile "$T/pid" --queue-maxlen 65536 >"$T/ld.log" 2>&1
LD=$LDT_LAST_PID
wait_for_output "$T/ld.log" ': diverting ' 10 || { cat "$T/ld.log"; fail "luadivert did not start"; }

# the same stream without reloads first, for its latency
UDP_WAIT=3 udp_run "$NS" 127.0.0.1 9000 10000 "$T/base.json" --rate 5000
echo "without reloads: worst one-way latency $(json_get "$T/base.json" lat_us_max) us," \
	"p99 $(json_get "$T/base.json" lat_us_p99) us"

bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9000 --count 100000000 --idle-ms 1000 --time-limit 120 \
	--ready "$T/ready" >"$T/recv.json"
RP=$LDT_LAST_PID
wait_for_file "$T/ready" 5 || fail "udprecv did not start"
bg_ns "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 100000000 --rate 5000 \
	--time-limit 120 >"$T/sent.json"
SP=$LDT_LAST_PID
sleep 0.5

run_kind() {
	kind=$1
	before=$(grep -c '^luadivert: reloaded' "$T/ld.log")
	i=0
	while [ $i -lt $ROUNDS ]; do
		case $kind in
		code)   write "udp dst port 9000" '"output"' 4 "v$i" ;;
		filter) if [ $((i % 2)) = 0 ]; then write "udp dst port 9000 or udp dst port 9009" '"output"' 4 x
			else write "udp dst port 9000" '"output"' 4 y; fi ;;
		both)   if [ $((i % 2)) = 0 ]; then write "udp portrange 9000-9009" '{ "output", "input" }' '"both"' x
			else write "udp dst port 9000" '"output"' 4 y; fi ;;
		esac
		ns_exec "$NS" "$LUADIVERT" reload --pidfile "$T/pid" >/dev/null || echo "reload failed" >>"$T/failed"
		sleep 0.1
		i=$((i + 1))
	done
	grep '^luadivert: reloaded' "$T/ld.log" | tail -n +$((before + 1)) |
		sed -n 's/.* in \([0-9.]*\) ms.*/\1/p' >"$T/times.$kind"
	printf '%-8s %2d reloads, ms min / median / max: %s\n' "$kind" "$(wc -l <"$T/times.$kind")" \
		"$(stats <"$T/times.$kind")"
}

echo "reload times under a 5,000 packets/s stream (luadivert's own log):"
run_kind code
run_kind filter
run_kind both
kill -TERM "$SP"; wait_for_exit "$SP" 5
wait_for_exit "$RP" 5 || kill -TERM "$RP"
wait "$RP" 2>/dev/null
SENT=$(json_get "$T/sent.json" sent)
GOT=$(json_get "$T/recv.json" unique)
echo "with reloads: sent $SENT, arrived $GOT, worst one-way latency $(json_get "$T/recv.json" lat_us_max) us," \
	"p99 $(json_get "$T/recv.json" lat_us_p99) us"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
[ -s "$T/failed" ] && echo "FAIL: $(wc -l <"$T/failed") reloads failed"
[ "$SENT" = "$GOT" ] && echo "PASS: nothing lost across $((3 * ROUNDS)) reloads" ||
	echo "FAIL: $((SENT - GOT)) datagrams lost"
MED=$(cat "$T/times.filter" "$T/times.both" | stats | awk -F' / ' '{ print $2 }')
awk -v m="$MED" 'BEGIN { exit !(m < 100) }' && echo "PASS: rule swap median $MED ms < 100 ms" ||
	echo "FAIL: rule swap median $MED ms >= 100 ms (busy machine? see load average)"
kill -TERM "$LD"; wait "$LD"

#!/bin/sh
# bench/busy_poll_bench.sh - idle round trips with `--busy-poll` (issue 16)
# against the bare-C batched NFQUEUE loop built in the same run, and
# luadivert without it. udpping sends 500 pings at 1000/s through each
# reader's queue (the request direction is queued, in mangle INPUT, on
# loopback in a namespace); three rounds, interleaved across the readers.
#
# The window must cover the gap between packets to pay off: at 1000/s that
# is 1 ms, so the row uses --busy-poll 2000 (the worker spins the whole
# ping run, and sleeps again 2 ms after the last packet).
#
#   busy.bare_p50 / busy.ld_p50 / busy.ld_busy_p50   median of the rounds' p50 (us)
#   busy.*_p99                                        the same for p99
# Prints "key value" lines for bench/report.py: goal ld_busy p50 <= bare p50.
#
# Root; everything happens in a namespace this script creates and deletes.
# Knobs: BUSY_US=2000 BUSY_ROUNDS=3 LUADIVERT=./luadivert
LDT_AREA=bench-busy
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
require_root
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"
ldt_tmpdir
US=${BUSY_US:-2000}
ROUNDS=${BUSY_ROUNDS:-3}
BB="$LDT_ROOT/build/bench"
ns_create q; NQ=$LDT_NS

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
jget() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1" | tail -n 1; }

# reader K NAME: queue K, pings to port 9400+K
READERS="bare:0 ld:1 ld_busy:2"
for w in $READERS; do
	name=${w%%:*}; k=${w#*:}
	iptables_ns "$NQ" -t mangle -A INPUT -p udp --dport $((9400 + k)) -j NFQUEUE --queue-num "$k" ||
		fail "iptables in $NQ"
	case $name in
	bare) bg_ns "$NQ" "$BB/bare_nfq_batched" --queue "$k" >"$LDT_TMP/$name.out" 2>&1 ;;
	ld) bg_ns "$NQ" "$LUADIVERT" run bench/policies/pass_all.lua --queue "$k" --no-rules \
		--pidfile "$LDT_TMP/$name.pid" >"$LDT_TMP/$name.out" 2>&1 ;;
	ld_busy) bg_ns "$NQ" "$LUADIVERT" run bench/policies/pass_all.lua --queue "$k" --no-rules \
		--busy-poll "$US" --pidfile "$LDT_TMP/$name.pid" >"$LDT_TMP/$name.out" 2>&1 ;;
	esac
	wait_for_queue "$NQ" "$k" 10 || { cat "$LDT_TMP/$name.out" >&2; fail "$name did not bind queue $k"; }
done

r=0
while [ $r -lt "$ROUNDS" ]; do
	for w in $READERS; do
		name=${w%%:*}; port=$((9400 + ${w#*:}))
		rm -f "$LDT_TMP/ready"
		bg_ns "$NQ" "$LDT_TOOLS/udpping" server --port "$port" --bind 127.0.0.1 \
			--ready "$LDT_TMP/ready" --time-limit 30 >/dev/null 2>&1
		srv=$LDT_LAST_PID
		wait_for_file "$LDT_TMP/ready" 5 || fail "udpping server did not start"
		ns_exec "$NQ" "$LDT_TOOLS/udpping" client --dst 127.0.0.1 --port "$port" \
			--count 500 --rate 1000 --time-limit 10 >"$LDT_TMP/ping" || fail "udpping ($name)"
		bg_stop "$srv"
		jget "$LDT_TMP/ping" rtt_us_p50 >>"$LDT_TMP/$name.p50"
		jget "$LDT_TMP/ping" rtt_us_p99 >>"$LDT_TMP/$name.p99"
	done
	r=$((r + 1))
done
for w in $READERS; do
	name=${w%%:*}
	log "$name: p50 $(tr '\n' ' ' <"$LDT_TMP/$name.p50")us; p99 $(tr '\n' ' ' <"$LDT_TMP/$name.p99")us"
	printf 'busy.%s_p50 %s\nbusy.%s_p99 %s\n' "$name" "$(median <"$LDT_TMP/$name.p50")" \
		"$name" "$(median <"$LDT_TMP/$name.p99")"
done
printf 'busy.us %s\nbusy.rounds %s\n' "$US" "$ROUNDS"

#!/bin/sh
# Issue 16: `luadivert run --workers N`. With 2 workers (queues 0 and 1,
# rules with --queue-balance 0:1):
#  (a) 8 UDP flows: every datagram the policy passes arrives, both workers
#      handled packets (per-queue counter lines), and a per-flow pipe (drop
#      every 10th datagram of each flow, counted in the worker's Lua state)
#      is exact per flow: exactly sequences 9, 19, 29, ... are missing;
#  (b) reloads under load: no datagram lost, none twice; every worker ran
#      the last version at the stop, and the counts each worker handed over
#      add up to every packet; a refused reload leaves both workers serving,
#      also when one candidate of two dies while the old workers are paused;
#  (c) bad --workers values are usage errors (exit 2);
#  (d) kill -9 of one worker under load: its lane restarts, nothing is lost.
# The kernel balances by addresses (not ports), so the flows use distinct
# addresses on lo (198.18.0.0/15, in our namespace only); 24 short extra flows
# make "both queues got a flow" certain in practice (all 32 on one queue:
# 2^-31).
LDT_AREA=workers
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
export LD_TEST_STATS="$LDT_TMP/stats"

# (c) bad input first: nothing is started
for bad in 0 abc -1 257 "2x"; do
	ns_exec "$NS" "$LUADIVERT" run "$LDT_ROOT/tests/policies/workers_flows.lua" --workers "$bad" \
		>"$LDT_TMP/bad.out" 2>&1
	check "--workers $bad: usage error, exit 2 ($?)" [ $? = 2 ]
done
check "... saying what is wrong" grep -q -- "--workers: '2x' is not 1..256 or auto" "$LDT_TMP/bad.out"
ns_exec "$NS" "$LUADIVERT" run "$LDT_ROOT/tests/policies/workers_flows.lua" --workers 2 \
	--report "$LDT_TMP/r.html" >"$LDT_TMP/bad2.out" 2>&1
check "--workers 2 --report: refused with exit 2 ($?)" [ $? = 2 ]
check "... saying why" grep -q "cover one queue" "$LDT_TMP/bad2.out"

i=1
while [ $i -le 34 ]; do
	ns_exec "$NS" ip addr add "198.18.0.$i/32" dev lo || fail "ip addr add"
	i=$((i + 1))
done

# w_start POLICY [ARGS]: luadivert with 2 workers and its own rules (UDP, output hook)
w_start() {
	_wp=$1; shift
	LD_N=$((LD_N + 1))
	LD_LOG="$LDT_TMP/luadivert.$LD_N.log"
	LD_PIDFILE="$LDT_TMP/luadivert.$LD_N.pid"
	bg_ns "$NS" "$LUADIVERT" run "$_wp" --workers 2 --queue 0 --filter "udp and dst net 198.18.0.0/24" \
		--hook output --pidfile "$LD_PIDFILE" "$@" >"$LD_LOG" 2>&1
	LD_PID=$LDT_LAST_PID
	wait_for_output "$LD_LOG" ': diverting ' 10 || { cat "$LD_LOG" >&2; fail "luadivert did not start"; }
}
# q_counter Q NAME: NAME from the last "queue Q: received" line
q_counter() {
	grep "queue $1: received [0-9]" "$LD_LOG" | tail -n 1 | tr ' ' '\n' |
		awk -v k="$2" 'f { print; exit } $0 == k { f = 1 }'
}
# flows COUNT RATE TAG [udpsend args]: 8 flows 198.18.0.i -> port 9100+i, i = 1..8,
# at once; receiver i writes TAG.i (JSON) and TAG.i.seqs
flows() {
	_c=$1; _r=$2; _t=$3; shift 3
	_rps=""
	for _i in 1 2 3 4 5 6 7 8; do
		rm -f "$_t.$_i.ready"
		bg_ns "$NS" "$LDT_TOOLS/udprecv" --bind "198.18.0.$_i" --port $((9100 + _i)) \
			--count "$_c" --idle-ms 1500 --time-limit 30 --ready "$_t.$_i.ready" \
			--seqs "$_t.$_i.seqs" >"$_t.$_i"
		_rps="$_rps $LDT_LAST_PID"
	done
	for _i in 1 2 3 4 5 6 7 8; do
		wait_for_file "$_t.$_i.ready" 5 || fail "udprecv $_i did not start"
	done
	_sps=""
	for _i in 1 2 3 4 5 6 7 8; do
		bg_ns "$NS" "$LDT_TOOLS/udpsend" --dst "198.18.0.$_i" --port $((9100 + _i)) --count "$_c" \
			--rate "$_r" --time-limit 20 "$@" >"$_t.$_i.sent"
		_sps="$_sps $LDT_LAST_PID"
	done
	for _p in $_sps; do wait "$_p"; done
	for _p in $_rps; do
		wait_for_exit "$_p" 3 || kill -TERM "$_p" 2>/dev/null
		wait "$_p"
	done
}
# 24 short flows to spread over both queues (nobody listens: they pass and
# vanish; 5 datagrams each, to a port of their own: the pipe drops none)
spray() {
	_i=11
	while [ $_i -le 34 ]; do
		ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst "198.18.0.$_i" --port $((9000 + _i)) --count 5 \
			--time-limit 5 >/dev/null || fail "udpsend spray"
		_i=$((_i + 1))
	done
}

# ---------------------------------------------------------------- (a)
w_start "$LDT_ROOT/tests/policies/workers_flows.lua" --metrics 127.0.0.1:9464
check "the rules balance over queues 0 and 1" sh -c \
	'ip netns exec "$0" iptables-save -t mangle 2>/dev/null | grep -q -- "--queue-balance 0:1"' "$NS"
check "two workers started, one per queue" sh -c \
	'grep -q "queue 0: running .* worker [0-9]* of 2" "$0" && grep -q "queue 1: running .* worker [0-9]* of 2" "$0"' "$LD_LOG"
spray
N=1000
flows $N 2000 "$LDT_TMP/a"
# /metrics labels each worker's queue
ip netns exec "$NS" curl -sf --max-time 5 http://127.0.0.1:9464/metrics >"$LDT_TMP/metrics" ||
	fail "no /metrics"
M0=$(awk '$1 == "luadivert_packets_received_total{queue=\"0\"}" { print $2 }' "$LDT_TMP/metrics")
M1=$(awk '$1 == "luadivert_packets_received_total{queue=\"1\"}" { print $2 }' "$LDT_TMP/metrics")
ld_stop
check "luadivert exited 0 ($LD_RC)" [ "$LD_RC" = 0 ]
for i in 1 2 3 4 5 6 7 8; do
	U=$(json_get "$LDT_TMP/a.$i" unique)
	check "flow $i: 900 of 1000 arrived ($U)" [ "$U" = 900 ]
	check "flow $i: exactly every 10th is missing (seq 9, 19, ...)" sh -c \
		'[ "$(awk "\$1 % 10 == 9" "$0" | wc -l)" = 0 ] && [ "$(sort -un "$0" | wc -l)" = 900 ]' \
		"$LDT_TMP/a.$i.seqs"
done
R0=$(q_counter 0 received); R1=$(q_counter 1 received)
check "worker of queue 0 handled packets ($R0)" [ "${R0:-0}" -gt 0 ]
check "worker of queue 1 handled packets ($R1)" [ "${R1:-0}" -gt 0 ]
TOT=$(grep "total (queues 0-1, 2 workers): received" "$LD_LOG" | tail -n 1 | awk '{ for (i = 1; i < NF; i++) if ($i == "received") print $(i + 1) }')
check "total line = the sum ($TOT = $R0 + $R1) = every packet sent (8120)" sh -c \
	'[ "$0" = $(($1 + $2)) ] && [ "$0" = 8120 ]' "${TOT:-0}" "${R0:-0}" "${R1:-0}"
check "/metrics has both queues, as the counter lines say ($M0, $M1)" \
	[ "$M0 $M1" = "$R0 $R1" ]
check "dropped = 8 flows x 100 ($(q_counter 0 dropped) + $(q_counter 1 dropped))" \
	[ $(( $(q_counter 0 dropped) + $(q_counter 1 dropped) )) = 800 ]
check "both workers ran on_stop" [ "$(grep -c '^flows-worker' "$LD_TEST_STATS")" = 2 ]

# ---------------------------------------------------------------- (b)
P="$LDT_TMP/policy.lua"
version() { sed "s/^local VERSION = .*/local VERSION = \"$1\"/" \
	"$LDT_ROOT/tests/policies/workers_reload.lua" >"$P.new" && mv "$P.new" "$P"; }
reload() { ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" --timeout 10 >>"$LDT_TMP/reload.out" 2>&1; }
version v1
w_start "$P"
spray
(
	sleep 0.4
	for v in v2 v3 v4; do
		version $v
		reload || echo "reload $v failed" >>"$LDT_TMP/reload.out"
		sleep 0.3
	done
) &
RELOADER=$!
N=4000
flows $N 2000 "$LDT_TMP/b"
wait $RELOADER
check "3 reloads succeeded, each reported once" [ "$(grep -c '^reloaded .* in every worker' "$LDT_TMP/reload.out")" = 3 ]
for i in 1 2 3 4 5 6 7 8; do
	U=$(json_get "$LDT_TMP/b.$i" unique); D=$(json_get "$LDT_TMP/b.$i" duplicates)
	check "flow $i: all $N arrived across the reloads ($U)" [ "$U" = $N ]
	check "flow $i: none twice ($D)" [ "$D" = 0 ]
done
# a refused reload: both workers keep serving
printf 'return function (pkt) return 1\n' >"$P"
check "a policy with a syntax error: reload fails" sh -c '! ip netns exec "$0" "$1" reload --pidfile "$2" --timeout 10 2>/dev/null' \
	"$NS" "$LUADIVERT" "$LD_PIDFILE"
flows 200 2000 "$LDT_TMP/c"
OK=0
for i in 1 2 3 4 5 6 7 8; do [ "$(json_get "$LDT_TMP/c.$i" unique)" = 200 ] && OK=$((OK + 1)); done
check "after it, both old workers still pass every flow ($OK of 8)" [ $OK = 8 ]
# one candidate of two dies while both old workers are paused (on_reload of
# the new version takes 1.5 s): the reload fails as a whole, the other
# candidate is killed, both old workers resume with their state
sed -e 's/^local VERSION = .*/local VERSION = "v5"/' \
	-e 's/^  on_reload = function (old) count = old or 0 end,/  on_reload = function (old) count = old or 0; local t = os.clock() + 1.5; while os.clock() < t do end end,/' \
	"$LDT_ROOT/tests/policies/workers_reload.lua" >"$P.new" && mv "$P.new" "$P"
grep -q 'os.clock() < t' "$P" || fail "the slow version was not written"
ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" --timeout 10 >"$LDT_TMP/slow.out" 2>&1 &
SLOW=$!
nkids() { [ "$(pgrep -P "$LD_PID" | wc -l)" -ge "$1" ]; }
wait_until 5 nkids 4 || fail "the reload started no candidates"
sleep 0.5
VICTIM=$(pgrep -n -P "$LD_PID")
kill -KILL "$VICTIM"
wait $SLOW
check "a candidate killed during the reload: reload fails ($?)" [ $? != 0 ]
check "... once, for every worker" [ "$(grep -c 'not reloading\|has errors' "$LDT_TMP/slow.out")" = 1 ]
wait_until 5 sh -c '[ "$(pgrep -P "$0" | wc -l)" = 2 ]' "$LD_PID"
check "... the other candidate is gone too: 2 workers left" [ "$(pgrep -P "$LD_PID" | wc -l)" = 2 ]
flows 200 2000 "$LDT_TMP/d"
OK=0
for i in 1 2 3 4 5 6 7 8; do [ "$(json_get "$LDT_TMP/d.$i" unique)" = 200 ] && OK=$((OK + 1)); done
check "both old workers resumed: every flow passes ($OK of 8)" [ $OK = 8 ]
ld_stop
check "luadivert exited 0 ($LD_RC)" [ "$LD_RC" = 0 ]
check "both workers ran v4 at the stop: both swapped every time" \
	[ "$(grep -c '^reload-worker v4 ' "$LD_TEST_STATS")" = 2 ]
SUM=$(awk '/^reload-worker/ { s += $3 } END { print s + 0 }' "$LD_TEST_STATS")
check "the counts the workers handed over add up to every packet ($SUM = 8 x $N + 2 x 8 x 200 + 120)" \
	[ "$SUM" = $((8 * N + 3200 + 120)) ]
check "each queue counted 3 reloads ($(q_counter 0 reloads), $(q_counter 1 reloads))" \
	[ "$(q_counter 0 reloads)$(q_counter 1 reloads)" = 33 ]
check "... and 2 refused ($(q_counter 0 reload_errors), $(q_counter 1 reload_errors))" \
	[ "$(q_counter 0 reload_errors)$(q_counter 1 reload_errors)" = 22 ]

# ---------------------------------------------------------------- crash
# kill -9 of one worker under load: its lane restarts, the other serves on,
# every datagram still arrives (the dead worker's packets in hand get the
# default verdict, pass)
version v1
w_start "$P"
spray
(
	sleep 0.3
	kill -KILL "$(pgrep -o -P "$LD_PID")"
) &
KILLER=$!
flows 1000 2000 "$LDT_TMP/e"
wait $KILLER
OK=0
for i in 1 2 3 4 5 6 7 8; do [ "$(json_get "$LDT_TMP/e.$i" unique)" = 1000 ] && OK=$((OK + 1)); done
check "a worker killed under load: every flow still arrives whole ($OK of 8)" [ $OK = 8 ]
ld_stop
check "luadivert exited 0 ($LD_RC)" [ "$LD_RC" = 0 ]
check "one crash and one restart, in one queue ($(q_counter 0 worker_crashes)/$(q_counter 1 worker_crashes))" \
	[ $(( $(q_counter 0 worker_crashes) + $(q_counter 1 worker_crashes) )) = 1 ]
check "... the lane restarted: two workers ran on_stop" [ "$(grep -c '^reload-worker v1 ' "$LD_TEST_STATS")" = 2 ]
check "every packet got one verdict (received = passed, total $(( $(q_counter 0 received) + $(q_counter 1 received) )))" \
	[ $(( $(q_counter 0 received) + $(q_counter 1 received) )) = $(( $(q_counter 0 passed) + $(q_counter 1 passed) )) ]
ldt_done

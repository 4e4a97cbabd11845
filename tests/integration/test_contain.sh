#!/bin/sh
# Containment: the policy runs in a worker process the supervisor replaces.
# With luadivert's own rules for udp 9000-9001, a sequenced stream to port
# 9000 while one datagram to 9001 triggers the fault:
#   a loop in the handler (hang -> killed, restarted; the second time given
#   up: default verdicts, exit 3), os.exit in the handler (crash ->
#   restarted), a table as error object (a handler error), a reload into a
#   top-level loop by --watch and by `luadivert reload` (refused at the
#   deadline; the old worker serves throughout), a loop in init at start
#   (clear error, exit 1, queue never bound), 100 ms per packet with a
#   backlog then SIGTERM (bounded by --stop-timeout, exit 4), kill -9 of the
#   worker while a delay pipe holds packets (nothing lost), kill -9 of the
#   supervisor (queue-bypass lets traffic through, `rules cleanup` removes
#   the rest). Each time: every datagram of the stream arrives once, the
#   stall stays short, nothing is left in the queue, no rule is left behind.
LDT_AREA=contain
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/rules.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
POLICY="$LDT_ROOT/tests/policies/contain_hostile.lua"
# A stall is the time from the fault to the next packet through: about
# --handler-timeout (500 ms) plus a worker start. The issue asks for 1 s;
# the check allows 2 s because ASan and a shared 2-core machine slow the
# worker start (the measured value is printed).
STALL_US=2000000

# hs_start MODE [run args]: luadivert with its own rules (or the test's with
# NORULES=1: installing rules takes a while); LD_PID, LD_LOG, LD_PIDFILE
hs_start() {
	_mode=$1; shift
	LD_N=$((LD_N + 1))
	LD_LOG="$LDT_TMP/luadivert.$LD_N.log"
	LD_PIDFILE="$LDT_TMP/luadivert.$LD_N.pid"
	if [ -n "${NORULES:-}" ]; then
		set -- --no-rules "$@"
	else
		set -- --filter 'udp dst portrange 9000-9001' --hook output "$@"
	fi
	bg_ns "$NS" env LD_HOSTILE="$_mode" "$LUADIVERT" run "${HS_POLICY:-$POLICY}" --queue 0 \
		--pidfile "$LD_PIDFILE" "$@" >"$LD_LOG" 2>&1
	LD_PID=$LDT_LAST_PID
	wait_for_output "$LD_LOG" ': running .* [(]pid [0-9]+, worker' 10 || { cat "$LD_LOG" >&2; fail "luadivert did not start"; }
}
worker_pid() { cat "/proc/$LD_PID/task/$LD_PID/children" 2>/dev/null | awk '{ print $1 }'; }
poison() {  # poison DELAY_S [COUNT]: datagrams to 9001 after DELAY_S, in the background
	( sleep "$1"; ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9001 \
		--count "${2:-1}" --rate 0 --time-limit 5 >/dev/null ) &
	POISON=$!
}
stream() {  # stream NAME COUNT RATE: sequenced datagrams to 9000, counted at the receiver
	UDP_RECV_ARGS="--seqs $LDT_TMP/$1.seqs" UDP_WAIT=5 \
		udp_run "$NS" 127.0.0.1 9000 "$2" "$LDT_TMP/$1.json" --rate "$3"
}
stream_ok() {  # stream_ok NAME COUNT: all arrived once, stall below STALL_US
	_lat=$(json_get "$LDT_TMP/$1.json" lat_us_max | cut -d. -f1)
	check "$1: all $2 of the stream arrive ($(json_get "$LDT_TMP/$1.json" unique))" \
		[ "$(json_get "$LDT_TMP/$1.json" unique)" = "$2" ]
	check "$1: none twice" [ "$(json_get "$LDT_TMP/$1.json" duplicates)" = 0 ]
	check "$1: the longest stall was ${_lat} us" [ "${_lat:-99999999}" -lt $STALL_US ]
}
queue_empty() { [ "$(nfq_stats "$NS" 0 | awk '{ print $3 }')" = 0 ]; }
stopped_clean() {  # stopped_clean NAME EXPECTED_RC
	check "$1: exit status $2 ($LD_RC)" [ "$LD_RC" = "$2" ]
	# (the nft backend only: auto picks it in a fresh namespace, and each
	# iptables-save takes 0.3 s here; the end of the test checks both)
	[ -n "${NORULES:-}" ] || check "$1: no rule left behind" [ "$(ld_chains "$NS" nft)" = 0 ]
	check "$1: queue unbound" [ -z "$(nfq_stats "$NS" 0)" ]
	check "$1: every packet got a verdict" \
		[ "$(ld_counter received)" = "$(( $(ld_counter passed) + $(ld_counter dropped) ))" ]
}

# 1. a loop in the handler: killed after --handler-timeout and restarted;
#    the second time within the window, the policy is given up on
hs_start loop --max-restarts 1
poison 0.3; P1=$POISON
poison 1.1; P2=$POISON
stream loop 1800 1000
wait $P1 $P2
wait_until 3 grep -q 'giving up' "$LD_LOG"
check "loop: nothing stuck in the queue" queue_empty
stream_ok loop 1800
ld_stop
check "loop: 2 hangs, 1 restart, given up" sh -c '[ "$1" = 2 ] && [ "$2" = 1 ] && [ "$3" = 1 ]' \
	- "$(ld_counter worker_hangs)" "$(ld_counter worker_restarts)" "$(ld_counter gave_up)"
check "loop: the log says why" grep -q 'more than 500 ms (--handler-timeout)' "$LD_LOG"
stopped_clean loop 3

# 2. os.exit in the handler: the worker dies and is replaced; once during the
#    stream, once after it (no later batch verdict can cover what it had in
#    hand: only the supervisor's verdict can)
hs_start exit
poison 0.3
stream exit 1000 1000
wait $POISON
poison 0
wait $POISON
wait_until 10 sh -c '[ "$(grep -cE "the worker (exited|was killed)|handler-timeout|policy error" "$1")" -ge 2 ]' \
	- "$LD_LOG"
check "exit: nothing stuck in the queue" queue_empty
stream_ok exit 1000
ld_stop
# (with a sandbox that turns os.exit into an error, it is a handler error;
# under ASan exit() runs the leak check, which may outlast --handler-timeout:
# then the worker is killed as hung)
check "exit: the worker died twice and was restarted, or os.exit was refused ($(ld_counter worker_crashes)+$(ld_counter worker_hangs) $(ld_counter worker_restarts) $(ld_counter errors))" \
	sh -c '[ $(($1 + $2)) = 2 ] && [ "$3" = 2 ] || [ "$4" -ge 2 ]' - \
	"$(ld_counter worker_crashes)" "$(ld_counter worker_hangs)" "$(ld_counter worker_restarts)" \
	"$(ld_counter errors)"
stopped_clean exit 0
iptables_ns "$NS" -A OUTPUT -p udp --dport 9000:9001 -j NFQUEUE --queue-num 0 --queue-bypass
NORULES=1

# 3. a table as error object: a handler error, the packet gets the default verdict
hs_start table
poison 0.1 5
stream table 600 2000
wait $POISON
check "table: nothing stuck in the queue" queue_empty
ld_stop
stream_ok table 600
check "table: 5 handler errors, no restart" sh -c '[ "$1" = 5 ] && [ "$2" = 0 ]' - \
	"$(ld_counter errors)" "$(ld_counter worker_restarts)"
check "table: logged with its fields" grep -q 'error object is a table) {code=1}' "$LD_LOG"
stopped_clean table 0

# 4. reloads into a top-level loop, by --watch and by `luadivert reload`:
#    refused at --reload-timeout, the old worker serves throughout
cp "$POLICY" "$LDT_TMP/live.lua"
HS_POLICY="$LDT_TMP/live.lua" hs_start pass --watch --reload-timeout 500
( sleep 0.2; printf 'while true do end\n' >"$LDT_TMP/live.new"; mv "$LDT_TMP/live.new" "$LDT_TMP/live.lua"
  sleep 0.7; ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" --timeout 5 >"$LDT_TMP/reload.out" 2>&1
  echo $? >"$LDT_TMP/reload.rc" ) &
RELOADER=$!
stream reload 1800 1000
wait $RELOADER
check "reload: nothing stuck in the queue" queue_empty
ld_stop
stream_ok reload 1800
check "reload: both refused (--watch and luadivert reload)" [ "$(ld_counter reload_errors)" = 2 ]
check "reload: luadivert reload exits 1 and says why" sh -c '[ "$(cat "$1")" = 1 ] && grep -q "within 500 ms" "$2"' \
	- "$LDT_TMP/reload.rc" "$LDT_TMP/reload.out"
stopped_clean reload 0

# 5. kill -9 of the worker while a delay pipe holds packets: nothing lost;
#    the supervisor's --record and --report outlive the workers
hs_start hold --record "$LDT_TMP/hold.pcapng" --report "$LDT_TMP/hold.html"
( sleep 0.4; kill -KILL "$(worker_pid)"; sleep 0.5; kill -KILL "$(worker_pid)" ) &
KILLER=$!
stream hold 1500 1000
wait $KILLER
check "hold: nothing stuck in the queue" queue_empty
ld_stop
R=$(json_get "$LDT_TMP/hold.json" unique)
check "hold: all 1500 arrive ($R)" [ "$R" = 1500 ]
check "hold: none twice" [ "$(json_get "$LDT_TMP/hold.json" duplicates)" = 0 ]
check "hold: 2 crashes, 2 restarts" sh -c '[ "$1" = 2 ] && [ "$2" = 2 ]' - \
	"$(ld_counter worker_crashes)" "$(ld_counter worker_restarts)"
check "hold: packets were held across the kills ($(ld_counter held))" [ "$(ld_counter held)" -gt 1000 ]
# one file for the whole run: what it holds and what it says it missed
# (the batches the killed workers had in hand) add up to what was received
RECW=$(sed -n 's/.*--record .*: \([0-9]*\) packets written, \([0-9]*\) not recorded/\1 \2/p' "$LD_LOG")
RECW=${RECW:-0 -1}
check "hold: record: tcpdump reads ${RECW%% *} packets" \
	[ "$(tcpdump -nr "$LDT_TMP/hold.pcapng" 2>/dev/null | wc -l)" = "${RECW%% *}" ]
check "hold: record: written + not recorded ($RECW) = received $(ld_counter received)" \
	[ "$(( ${RECW% *} + ${RECW#* } ))" = "$(ld_counter received)" ]
check "hold: report written after the kills" grep -q 'id="throughput"' "$LDT_TMP/hold.html"
stopped_clean hold 0
iptables_ns "$NS" -D OUTPUT -p udp --dport 9000:9001 -j NFQUEUE --queue-num 0 --queue-bypass
NORULES=

# 6. a loop in init at start: a clear error, exit 1, the queue never bound
printf 'return { on_packet = function () return 1 end,\n  init = function () while true do end end }\n' >"$LDT_TMP/init.lua"
ns_exec "$NS" "$LUADIVERT" run "$LDT_TMP/init.lua" --queue 0 --init-timeout 300 \
	--pidfile "$LDT_TMP/init.pid" >"$LDT_TMP/init.out" 2>&1
RC=$?
check "init loop: exit 1 ($RC)" [ "$RC" = 1 ]
check "init loop: says so" grep -q 'init took longer than 300 ms (--init-timeout)' "$LDT_TMP/init.out"
check "init loop: the queue was never bound" [ -z "$(nfq_stats "$NS" 0)" ]

# 7. 100 ms per packet with a backlog, then SIGTERM: --stop-timeout bounds it
hs_start slow --handler-timeout 60000 --stop-timeout 500
rm -f "$LDT_TMP/slow.ready"
bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9001 --count 50 --idle-ms 1500 --time-limit 20 \
	--ready "$LDT_TMP/slow.ready" >"$LDT_TMP/slow.json"
RP=$LDT_LAST_PID
wait_for_file "$LDT_TMP/slow.ready" 5 || fail "udprecv did not start"
ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9001 --count 50 --rate 0 \
	--time-limit 5 >/dev/null
sleep 0.3
T0=$(date +%s%N)
ld_stop
DT=$(( ($(date +%s%N) - T0) / 1000000 ))
wait $RP
check "slow: SIGTERM to exit took ${DT} ms (deadline 500 ms + cleanup; 5 s of backlog)" [ "$DT" -lt 3000 ]
check "slow: all 50 of the backlog arrive" [ "$(json_get "$LDT_TMP/slow.json" unique)" = 50 ]
check "slow: the log says the worker missed the stop deadline" grep -q 'did not stop within 500 ms' "$LD_LOG"
stopped_clean slow 4

# 8. kill -9 of the supervisor while the policy loops: the worker dies with
#    it (else it would keep the queue bound), queue-bypass lets traffic
#    through, `luadivert rules cleanup` removes the rest
hs_start loop --handler-timeout 60000
W=$(worker_pid)
poison 0; wait $POISON
sleep 0.2
kill -KILL "$LD_PID"
wait "$LD_PID" 2>/dev/null
wait_until 3 sh -c "! kill -0 $W"
check "supervisor killed: the worker died with it" sh -c "! kill -0 $W 2>/dev/null"
check "supervisor killed: its rules are still there" [ "$(ld_chains "$NS" nft)" -gt 0 ]
udp_run "$NS" 127.0.0.1 9000 200 "$LDT_TMP/bypass.json" --rate 2000
check "supervisor killed: queue-bypass lets all 200 through" [ "$(json_get "$LDT_TMP/bypass.json" unique)" = 200 ]
ns_exec "$NS" "$LUADIVERT" rules cleanup --queue 0 >"$LDT_TMP/cleanup.out" 2>&1
check "rules cleanup: exit 0, no rule left" sh -c '[ "$1" = 0 ] && [ "$2" = 0 ]' - "$?" "$(ld_chains "$NS")"
ldt_done

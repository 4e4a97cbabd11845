#!/bin/sh
# kill -9 of the worker while copies of local-origin packets are held
# (issues 12 + 17). At output, held packets are taken over: the original
# is dropped at once and the copy waits in the hold store, which lives in
# the supervisor's shared region (core/shared_state.h). A dead worker must
# lose none of those copies and send none twice: the release log marks the
# copies sent (from the kernel's own msg_len stores into the shared
# sendmmsg array when the kill came inside or just after that call),
# ld_shared_recover() puts the unsent ones back in the heap and rebuilds
# the store's free list for the next worker.
# A sends a sequence-numbered UDP stream to B through a 200 ms delay at
# A's output; the worker is killed twice while ~400 copies are held; B
# counts every sequence number exactly once.
LDT_AREA=shp-kill
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
shape_policy "$LDT_TMP/d200.lua" "delay = 200, seed = 1"

LD_LOG="$LDT_TMP/luadivert.log"
bg_ns "$A" "$LUADIVERT" run "$LDT_TMP/d200.lua" --queue 0 --hook output \
	--filter "udp dst port 9710" --pidfile "$LDT_TMP/ld.pid" >"$LD_LOG" 2>&1
LD_PID=$LDT_LAST_PID
wait_for_output "$LD_LOG" 'diverting' 10 || { cat "$LD_LOG" >&2; fail "luadivert did not start"; }
worker_pid() { cat "/proc/$LD_PID/task/$LD_PID/children" 2>/dev/null | awk '{ print $1 }'; }

# 2000 packets over 1 s; kills at 0.4 s and 0.8 s, each with ~400 copies held.
( sleep 0.4; kill -KILL "$(worker_pid)"; sleep 0.4; kill -KILL "$(worker_pid)" ) &
KILLER=$!
UDP_SEND_NS=$A UDP_WAIT=3 udp_run "$B" "$ADDR_B" 9710 2000 "$LDT_TMP/kill.json" --rate 2000
wait $KILLER
ld_stop
log "received: $(cat "$LDT_TMP/kill.json")"
log "counters: $(grep 'received [0-9]' "$LD_LOG")"
check "kill -9: all 2000 arrive ($(json_get "$LDT_TMP/kill.json" unique))" \
	[ "$(json_get "$LDT_TMP/kill.json" unique)" = 2000 ]
check "kill -9: none twice ($(json_get "$LDT_TMP/kill.json" duplicates))" \
	[ "$(json_get "$LDT_TMP/kill.json" duplicates)" = 0 ]
check "kill -9: 2 crashes, 2 restarts" sh -c '[ "$1" = 2 ] && [ "$2" = 2 ]' - \
	"$(ld_counter worker_crashes)" "$(ld_counter worker_restarts)"
check "kill -9: the packets were taken over ($(ld_counter taken))" \
	[ "$(ld_counter taken)" -gt 1000 ]
check "kill -9: no copy overflow or send error" \
	[ "$(ld_counter copy_overflow)$(ld_counter inject_errors)" = 00 ]
check "kill -9: exit status 0" [ "$LD_RC" = 0 ]
ldt_done

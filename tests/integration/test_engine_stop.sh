#!/bin/sh
# The end of a run (issue 14, items 3, 17, 18, 19): on_stop runs while the
# receive buffers are mapped, so a policy that kept a packet and a view reads
# them at exit (no crash, pid file removed); an error in on_stop makes the
# exit status 1 and is logged through tostring (a table with __tostring,
# not "(null)"); `luadivert check` does not run on_stop.
LDT_AREA=eng-stopcb
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
POL=$LDT_ROOT/tests/policies/engine_keep.lua

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0

ld_start "$NS" "$POL" --queue 0
udp_run "$NS" 127.0.0.1 9000 50 "$LDT_TMP/a.json" --rate 5000
check "50 datagrams arrive" [ "$(json_get "$LDT_TMP/a.json" unique)" = 50 ]
ld_stop
check "exit status 0 with a kept packet and view (got $LD_RC)" [ "$LD_RC" = 0 ]
check "on_stop read the kept packet (TTL 64 on loopback)" \
	grep -qE 'on_stop: kept packet len [0-9]+ ttl 64' "$LD_LOG"
check "the pid file is removed" [ ! -e "$LD_PIDFILE" ]

KEEP_STOP_ERROR=1
export KEEP_STOP_ERROR
ld_start "$NS" "$POL" --queue 0
udp_run "$NS" 127.0.0.1 9000 10 "$LDT_TMP/b.json" --rate 5000
ld_stop
unset KEEP_STOP_ERROR
check "an error in on_stop: exit status 1 (got $LD_RC)" [ "$LD_RC" = 1 ]
check "a non-string error object is logged with its tostring" \
	grep -q 'policy on_stop: on_stop object error' "$LD_LOG"
check "no (null) in the log" sh -c "! grep -q '(null)' '$LD_LOG'"
check "the pid file is removed after a failing on_stop" [ ! -e "$LD_PIDFILE" ]

KEEP_MARK=$LDT_TMP/mark "$LUADIVERT" check "$POL" >"$LDT_TMP/check.out" 2>&1
check "check accepts the policy" grep -q ': ok' "$LDT_TMP/check.out"
check "check does not run on_stop" [ ! -e "$LDT_TMP/mark" ]
ldt_done

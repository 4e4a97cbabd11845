#!/bin/sh
# A 20 MB TCP transfer over loopback through the queue, with GSO: the bytes
# arrive intact (hash compared), and the policy saw packets bigger than the
# MTU (the kernel hands over GSO packets whole with NFQA_CFG_F_GSO).
LDT_AREA=eng-gso
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools tcpxfer
ldt_tmpdir
ns_create a; NS=$LDT_NS
BYTES=20000000

iptables_ns "$NS" -A OUTPUT -p tcp --dport 5001 -j NFQUEUE --queue-num 0
iptables_ns "$NS" -A OUTPUT -p tcp --sport 5001 -j NFQUEUE --queue-num 0
export LD_TEST_STATS="$LDT_TMP/stats"
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_gso_stats.lua" --queue 0

tcp_run "$NS" 127.0.0.1 5001 $BYTES 7 "$LDT_TMP/xfer"
ld_stop

SENT=$(json_hash "$LDT_TMP/xfer.send")
GOT=$(json_hash "$LDT_TMP/xfer.recv")
check "all $BYTES bytes arrive" grep -q "\"received\":$BYTES" "$LDT_TMP/xfer.recv"
check "the hash of what arrived equals the hash of what was sent ($SENT)" \
	sh -c '[ -n "$0" ] && [ "$0" = "$1" ]' "$SENT" "$GOT"
cat "$LD_TEST_STATS"
BIG=$(awk '{print $6}' "$LD_TEST_STATS")
check "the policy saw packets bigger than the MTU ($BIG)" [ "${BIG:-0}" -gt 0 ]
check "no handler errors" [ "$(ld_counter errors)" = 0 ]
check "no kernel or send errors" [ "$(ld_counter send_errors)$(ld_counter kernel_errors)" = 00 ]
check "exit status 0" [ "$LD_RC" = 0 ]
ldt_done

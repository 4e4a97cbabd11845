#!/bin/sh
# The life of divert rules: an invalid filter installs nothing (exit 2); a
# second instance on the same queue refuses to start and leaves the first
# one's rules alone; queues and namespaces are independent; kill -9 leaves
# the rules, `rules list` shows them as leftovers, with the default
# --queue-bypass traffic flows, with --fail-closed it stops, and
# `rules cleanup` removes them; a restart replaces a dead instance's rules.
LDT_AREA=rules-life
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
rules_setup
ns_create a; NS=$LDT_NS
ns_create b; NS2=$LDT_NS
N=100

# --- invalid filters: exit 2, libpcap's message, nothing installed
div_try "$NS" drop --queue 0 --filter 'udp dts port 9000' --hook output
check "syntax error: exit 2" [ "$DIV_RC" = 2 ]
check "syntax error: libpcap's message" grep -q 'invalid filter "udp dts port 9000": .*syntax error' "$DIV_OUT"
check "syntax error: no chain" [ "$(ld_chains "$NS")" = 0 ]
check "syntax error: no mangle table created (nft)" \
	[ "$(ns_exec "$NS" iptables-nft-save | grep -c '^\*')" = 0 ]
div_try "$NS" drop --queue 0 --filter 'port 70000'
check "bad port: exit 2 and message" sh -c "[ $DIV_RC = 2 ] && grep -q 'port' '$DIV_OUT'"
div_try "$NS" drop --queue 0 --filter 'udp and inbound'
check "inbound (socket metadata): exit 2, points at --hook" sh -c "[ $DIV_RC = 2 ] && grep -q -- '--hook' '$DIV_OUT'"
div_try "$NS" drop --queue 0 --filter 'ip6 and udp' --family 4
check "no IPv4 match with --family 4: exit 2" [ "$DIV_RC" = 2 ]
div_try "$NS" drop --queue 0 --filter \
	'udp port 1 or udp port 2 or udp port 3 or udp port 4 or udp port 5 or udp port 6 or udp port 7 or udp port 8 or udp port 9 or udp port 10 or udp port 11 or udp port 12 or udp port 13 or udp port 14 or udp port 15 or udp port 16 or udp port 17 or udp port 18 or udp port 19 or udp port 20 or udp port 21 or udp port 22 or udp port 23 or udp port 24 or udp port 25 or udp port 26 or udp port 27 or udp port 28 or udp port 29 or udp port 30'
check "too long for xt_bpf: exit 2" [ "$DIV_RC" = 2 ]
check "too long for xt_bpf: says so" grep -q 'at most 64' "$DIV_OUT"
check "invalid filters left no chain" [ "$(ld_chains "$NS")" = 0 ]

# --- an iptables failure: its stderr is reported, the family that went in is
#     rolled back (a stand-in ip6tables-nft-restore that always fails)
mkdir -p "$LDT_TMP/bin"
printf '#!/bin/sh\necho "ip6tables-nft-restore: line 4 failed (stand-in)" >&2\nexit 1\n' \
	>"$LDT_TMP/bin/ip6tables-nft-restore"
chmod +x "$LDT_TMP/bin/ip6tables-nft-restore"
PATH="$LDT_TMP/bin:$PATH" div_try "$NS" drop --queue 0 --filter udp --hook output --backend nft
check "failing ip6tables: exit 1" [ "$DIV_RC" = 1 ]
check "failing ip6tables: its stderr and the line it rejected" \
	grep -q 'line 4 failed (stand-in) \[line 4: -A LUADIVERT-Q0 ' "$DIV_OUT"
check "failing ip6tables: the IPv4 rules were rolled back" [ "$(ld_chains "$NS")" = 0 ]

# --- one instance per queue and namespace
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output
FIRST=$DIV_PID; FIRST_LOG=$DIV_LOG
div_try "$NS" drop --queue 0 --filter 'udp' --hook input
check "second instance on queue 0: exit 1" [ "$DIV_RC" = 1 ]
check "second instance: clear message" grep -q "queue 0 is already in use by luadivert pid $FIRST" "$DIV_OUT"
check "second instance: first one's rules intact" [ "$(ld_chains "$NS")" = 2 ]
check "second instance: no input jump added" \
	[ "$(rules_cmd "$NS" list | grep -c -- '-A INPUT')" = 0 ]
DIV_PID=$FIRST; DIV_LOG=$FIRST_LOG
check "first instance still diverts" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
check "list: queue 0 in use by its pid" list_has "$NS" "queue 0: in use by luadivert pid $FIRST"
# cleanup leaves a running instance's rules alone
rules_cmd "$NS" cleanup >"$LDT_TMP/cl.out" 2>&1
check "cleanup: keeps a held queue's rules" [ "$(ld_chains "$NS")" = 2 ]
check "cleanup: says why, once" [ "$(grep -c "queue 0 is in use by luadivert pid $FIRST" "$LDT_TMP/cl.out")" = 1 ]

# another queue in the same namespace, and queue 0 in another namespace
div_start "$NS" drop --queue 1 --filter 'udp dst port 9001' --hook output
Q1=$DIV_PID
check "queue 1 alongside queue 0: both chains" [ "$(ld_chains "$NS")" = 4 ]
check "queue 1 diverts 9001" [ "$(udp_count "$NS" 127.0.0.1 9001 $N)" = 0 ]
div_start "$NS2" drop --queue 0 --filter 'udp dst port 9000' --hook output
check "queue 0 in another namespace runs too" ldt_alive "$DIV_PID"
div_stop
DIV_PID=$Q1; div_stop
check "stopping queue 1 leaves queue 0's rules" [ "$(ld_chains "$NS")" = 2 ]
DIV_PID=$FIRST; div_stop
check "SIGTERM: all rules removed" [ "$(ld_chains "$NS")" = 0 ]
check "SIGTERM: lock file removed" sh -c "! ls /run/luadivert/net$(ns_exec "$NS" stat -L -c %i /proc/self/ns/net)-queue-0.lock 2>/dev/null"

# --- kill -9 with the default --queue-bypass
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output
check "running: 9000 dropped" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
div_stop KILL
check "kill -9: rules stay" [ "$(ld_chains "$NS")" = 2 ]
check "list: shows the chain" list_has "$NS" '-N LUADIVERT-Q0$'
check "list: says leftover" list_has "$NS" 'queue 0: no luadivert holds it'
check "bypass: traffic flows with nobody listening" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = $N ]

# a restart replaces the dead instance's rules instead of adding to them
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output
check "restart: one chain per family" [ "$(ld_chains "$NS")" = 2 ]
check "restart: one jump per family" [ "$(rules_cmd "$NS" list | grep -c -- '-A OUTPUT -j LUADIVERT-Q0$')" = 2 ]
check "restart: diverts again" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
div_stop KILL
rules_cmd "$NS" cleanup --queue 0 >"$LDT_TMP/cl2.out" 2>&1
check "cleanup --queue 0: removed 2 chains" grep -q 'removed 2 luadivert chains' "$LDT_TMP/cl2.out"
check "cleanup: nothing left" [ "$(ld_chains "$NS")" = 0 ]
check "list: nothing" list_has "$NS" 'no luadivert rules'
rules_cmd "$NS" cleanup >/dev/null 2>&1
check "cleanup again: nothing to do, exit 0" [ $? = 0 ]

# --- kill -9 with --fail-closed
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output --fail-closed
check "fail-closed rule has no --queue-bypass" \
	sh -c "! ip netns exec '$NS' iptables-nft-save | grep -q -- '--queue-bypass'"
div_stop KILL
check "fail-closed: traffic stops with nobody listening" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
check "fail-closed: other traffic flows" [ "$(udp_count "$NS" 127.0.0.1 9001 $N)" = $N ]
rules_cmd "$NS" cleanup >/dev/null 2>&1
check "fail-closed: cleanup lets it flow again" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = $N ]

# --- cleanup --force removes a held queue's rules
div_start "$NS" accept --queue 5 --hook output
rules_cmd "$NS" cleanup --force >/dev/null 2>&1
check "cleanup --force: removed a held queue's rules" [ "$(ld_chains "$NS")" = 0 ]
div_stop
check "the holder exits cleanly after --force took its rules" [ "$DIV_RC" = 0 ]

# --- the lock directory can be moved ($LUADIVERT_RUN_DIR)
mkdir -p "$LDT_TMP/run"
LUADIVERT_RUN_DIR="$LDT_TMP/run"; export LUADIVERT_RUN_DIR
div_start "$NS" accept --queue 7 --hook output
check "LUADIVERT_RUN_DIR: lock file there" sh -c "ls '$LDT_TMP/run' | grep -q 'queue-7.lock'"
div_stop
check "LUADIVERT_RUN_DIR: lock file gone after exit" [ -z "$(ls "$LDT_TMP/run")" ]
div_start "$NS" accept --queue 7 --hook output
div_stop KILL
check "kill -9: the lock file stays (the lock itself died)" [ -n "$(ls "$LDT_TMP/run")" ]
rules_cmd "$NS" cleanup >/dev/null 2>&1
check "cleanup deletes a dead instance's lock file too" [ -z "$(ls "$LDT_TMP/run")" ]
unset LUADIVERT_RUN_DIR
check "nothing left" [ "$(ld_chains "$NS")" = 0 ]
ldt_done

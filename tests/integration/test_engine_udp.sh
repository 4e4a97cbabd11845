#!/bin/sh
# Pass-all and drop-by-port on real UDP over loopback, IPv4 and IPv6:
# every datagram that must arrive is counted at the receiver, every one that
# must be dropped is missing, and the daemon's counters agree with the kernel's.
LDT_AREA=eng-udp
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=5000

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000:9002 -j NFQUEUE --queue-num 0
ip6tables_ns "$NS" -A OUTPUT -p udp --dport 9000:9002 -j NFQUEUE --queue-num 0

ld_start "$NS" "$LDT_ROOT/scripts/examples/pass_all.lua" --queue 0
udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/v4.json" --rate 50000
check "IPv4 pass-all: all $N arrive" [ "$(json_get "$LDT_TMP/v4.json" unique)" = $N ]
check "IPv4 pass-all: none twice" [ "$(json_get "$LDT_TMP/v4.json" duplicates)" = 0 ]
udp_run "$NS" ::1 9000 $N "$LDT_TMP/v6.json" --rate 50000
check "IPv6 pass-all: all $N arrive" [ "$(json_get "$LDT_TMP/v6.json" unique)" = $N ]
K=$(nfq_stats "$NS" 0)
ld_stop
check "exit status 0 after SIGTERM" [ "$LD_RC" = 0 ]
check "daemon received 2N" [ "$(ld_counter received)" = $((2 * N)) ]
check "daemon passed 2N" [ "$(ld_counter passed)" = $((2 * N)) ]
check "kernel handed out 2N ids" [ "$(echo "$K" | awk '{print $8}')" = $((2 * N)) ]
check "kernel dropped none" [ "$(echo "$K" | awk '{print $6 + $7}')" = 0 ]
check "batches were formed" [ "$(ld_counter batches)" -lt $((2 * N)) ]

ld_start "$NS" "$LDT_ROOT/tests/policies/engine_drop_port.lua" --queue 0
udp_run "$NS" 127.0.0.1 9001 500 "$LDT_TMP/drop.json" --rate 20000
udp_run "$NS" 127.0.0.1 9002 500 "$LDT_TMP/keep.json" --rate 20000
udp_run "$NS" ::1 9001 500 "$LDT_TMP/drop6.json" --rate 20000
ld_stop
check "port 9001 (v4): none arrive" [ "$(json_get "$LDT_TMP/drop.json" received)" = 0 ]
check "port 9001 (v6): none arrive" [ "$(json_get "$LDT_TMP/drop6.json" received)" = 0 ]
check "port 9002: all 500 arrive" [ "$(json_get "$LDT_TMP/keep.json" unique)" = 500 ]
check "daemon dropped 1000" [ "$(ld_counter dropped)" = 1000 ]
check "daemon passed 500" [ "$(ld_counter passed)" = 500 ]

# the sending socket's owner is visible to the policy
if command -v setpriv >/dev/null 2>&1; then
	ld_start "$NS" "$LDT_ROOT/tests/policies/engine_uid.lua" --queue 0
	udp_run "$NS" 127.0.0.1 9000 300 "$LDT_TMP/root.json" --rate 20000
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9002 --count 300 --time-limit 5 >"$LDT_TMP/nobody.json"
	RP=$LDT_LAST_PID
	wait_for_port "$NS" udp 9002 5
	ns_exec "$NS" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9002 --count 300 --time-limit 5 >/dev/null
	sleep 1; kill -TERM "$RP" 2>/dev/null; wait "$RP"
	ld_stop
	check "uid: root's datagrams pass" [ "$(json_get "$LDT_TMP/root.json" unique)" = 300 ]
	check "uid: nobody's datagrams are dropped by uid" [ "$(json_get "$LDT_TMP/nobody.json" received)" = 0 ]
	check "uid: 300 dropped" [ "$(ld_counter dropped)" = 300 ]
fi
ldt_done

#!/bin/sh
# scripts/demo.sh - `make demo`: luadivert acting on real traffic between two
# network namespaces it creates (and removes, also on failure). Nothing
# touches this machine's own network: the rules live inside the namespaces,
# the addresses are 198.18.0.1 and 198.18.0.2 (the benchmarking range).
LDT_AREA=demo
. "$(dirname "$0")/../tests/lib/netns.sh"
require_root
require_tools udpsend udprecv
require_cmd python3 ping iperf3
ldt_tmpdir
T=$LDT_TMP
EX="$LDT_ROOT/scripts/examples"

ns_create client; A=$LDT_NS
ns_create server; B=$LDT_NS
veth_pair "$A" "$B" 0

say() { printf '\n== %s\n' "$*"; }

# start POLICY FILTER: run luadivert on queue 0 inside the client namespace;
# it installs the rules sending FILTER's outgoing packets to the queue itself
start() {
	bg_ns "$A" "$LUADIVERT" run "$1" --queue 0 --filter "$2" --hook output \
		--pidfile "$T/pid" >"$T/ld.log" 2>&1
	LD=$LDT_LAST_PID
	wait_for_output "$T/ld.log" 'diverting' 10 || { cat "$T/ld.log"; fail "luadivert did not start"; }
	echo "   luadivert run $(basename "$1") --filter '$2' --hook output"
}
# stop: SIGTERM, then show the main counters luadivert printed on exit
stop() {
	kill -TERM "$LD"; wait "$LD"
	grep 'received [0-9]' "$T/ld.log" | tail -n 1 | awk '{
		for (i = 1; i < NF; i++) c[$i] = $(i + 1)
		printf "   luadivert: received %s, passed %s, dropped %s, modified %s, errors %s, in %s batches\n",
			c["received"], c["passed"], c["dropped"], c["modified"], c["errors"], c["batches"] }'
	# (the SIGUSR1 rate tables of step 5 are shown by counters(), not again here)
	grep -v 'received [0-9]\|running\|conntrack information\|diverting\|the last [0-9.]* s:\|^  ' "$T/ld.log" | sed 's/^/   /'
}

say "1. drop_odd_pings.lua: ping $ADDR_B 10 times; odd sequence numbers are dropped"
start "$EX/drop_odd_pings.lua" icmp
ns_exec "$A" ping -n -c 10 -i 0.1 -W 1 "$ADDR_B" | grep -E 'icmp_seq|transmitted' | sed 's/^/   /'
stop

say "2. rewrite_payload.lua: UDP text to port 9000; \"hello\" becomes \"HELLO\" on the way"
start "$EX/rewrite_payload.lua" 'udp dst port 9000'
bg_ns "$B" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000)); s.settimeout(5)
open(sys.argv[1], "w").close()
for _ in range(2):
    data, _ = s.recvfrom(2048)
    print("   received: %r" % data.decode(), flush=True)
' "$T/ready" >"$T/recv.txt"
RP=$LDT_LAST_PID
wait_until 5 test -e "$T/ready" || fail "receiver did not start"
for msg in "hello world" "well hello, hello luadivert"; do
	echo "   sent:     '$msg'"
	ns_exec "$A" python3 -c 'import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), (sys.argv[2], 9000))' "$msg" "$ADDR_B"
done
wait "$RP"
cat "$T/recv.txt"
stop

say "3. drop_dns.lua and pass-through: 2000 datagrams to port 53 and 2000 to port 9000"
start "$EX/drop_dns.lua" udp
echo "   the IPv4 rules it installed (luadivert rules list; IPv6 alike):"
ns_exec "$A" "$LUADIVERT" rules list | awk '/^(nft|legacy) IPv4/ { f = 1 } /^$/ { f = 0 } f' |
	sed 's/^/   /'
for port in 53 9000; do
	bg_ns "$B" "$LDT_TOOLS/udprecv" --port $port --count 2000 --idle-ms 1000 --time-limit 10 \
		--ready "$T/r$port" >"$T/udp$port.json"
	RP=$LDT_LAST_PID
	wait_until 5 test -e "$T/r$port"
	ns_exec "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port $port --count 2000 --rate 20000 \
		--time-limit 10 >/dev/null
	wait_for_exit "$RP" 3 || kill -TERM "$RP"
	wait "$RP"
	echo "   port $port: sent 2000, arrived $(sed -n 's/.*"received":\([0-9]*\).*/\1/p' "$T/udp$port.json")"
done
stop

say "4. shape_3g.lua: a 4 s TCP upload (iperf3) with pings beside it, without and with a 3G
   uplink (384 kbit/s, 100 +- 30 ms) at the sender's output"
# upload LABEL: iperf3 client -> server for 4 s, ping every 0.3 s meanwhile
upload() {
	bg_ns "$B" iperf3 -s -1 -p 5201 >/dev/null 2>&1
	SP=$LDT_LAST_PID
	wait_for_port "$B" tcp 5201 5 || fail "iperf3 server did not start"
	bg_ns "$A" ping -n -c 12 -i 0.3 -W 2 "$ADDR_B" >"$T/ping.txt"
	PP=$LDT_LAST_PID
	ns_exec "$A" iperf3 -c "$ADDR_B" -p 5201 -t 4 >"$T/iperf.txt" 2>&1 || cat "$T/iperf.txt"
	wait "$PP"
	bg_stop "$SP"
	printf '   %-26s upload %-16s ping RTT avg %s ms (%s)\n' "$1" \
		"$(awk '/receiver/ { print $(NF - 2), $(NF - 1) }' "$T/iperf.txt")" \
		"$(sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p' "$T/ping.txt")" \
		"$(grep -o '[0-9]* received' "$T/ping.txt") of 12"
}
upload "no shaping:"
start "$EX/shape_3g.lua" "tcp dst port 5201 or icmp"
upload "with shape_3g.lua:"
stop
echo "   (the sender's own packets are copied and sent at their release time, so the"
echo "   upload settles at the 3G rate; docs/shaping.md, \"Shaping your own traffic\")"

# --- 5. hot reload of code and rules together (issue 18). Its own function,
# so that other parts of the demo can go around it.

# counters LABEL: ask the running luadivert for its counters (SIGUSR1), show them
counters() {
	_n=$(grep -c 'received [0-9]' "$T/ld.log")
	kill -USR1 "$LD"
	wait_until 5 sh -c "[ \$(grep -c 'received [0-9]' '$T/ld.log') -gt $_n ]"
	grep 'received [0-9]' "$T/ld.log" | tail -n 1 | awk -v l="$1" '{
		for (i = 1; i < NF; i++) c[$i] = $(i + 1)
		printf "   %-7s received %s, passed %s, dropped %s, reloads %s\n", l,
			c["received"], c["passed"], c["dropped"], c["reloads"] }'
}

demo_hot_reload() {
	say "5. hot reload: the policy's code and filter edited while traffic flows, then SIGHUP"
	printf '%s\n' 'local divert = require "divert"' 'return {' \
		'  filter = "udp dst port 9000",         -- the rules travel with the code' \
		'  hook = "output",' \
		'  on_packet = function (pkt) return divert.PASS end,' '}' >"$T/v1.lua"
	printf '%s\n' 'local divert = require "divert"' 'return {' \
		'  filter = "udp dst port 9000 or udp dst port 9001",' \
		'  hook = "output",' \
		'  on_packet = function (pkt)' \
		'    if pkt:udp():dst_port() == 9001 then return divert.DROP end' \
		'    return divert.PASS' '  end,' '}' >"$T/v2.lua"
	cp "$T/v1.lua" "$T/policy.lua"
	bg_ns "$A" "$LUADIVERT" run "$T/policy.lua" --queue 0 --pidfile "$T/pid" >"$T/ld.log" 2>&1
	LD=$LDT_LAST_PID
	wait_for_output "$T/ld.log" 'diverting' 10 || { cat "$T/ld.log"; fail "luadivert did not start"; }
	echo "   luadivert run policy.lua: diverting $(sed -n 's/.*: diverting //p' "$T/ld.log")"
	for port in 9000 9001; do
		bg_ns "$B" "$LDT_TOOLS/udprecv" --port $port --count 6000 --idle-ms 1000 \
			--time-limit 10 --ready "$T/h$port" >"$T/hot$port.json"
		echo "$LDT_LAST_PID" >"$T/rp$port"
		wait_until 5 test -e "$T/h$port"
	done
	echo "   sending 6000 numbered datagrams to port 9000 and 6000 to port 9001, 2000/s each"
	for port in 9000 9001; do
		bg_ns "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port $port --count 6000 \
			--rate 2000 --time-limit 10 >/dev/null
	done
	sleep 1
	counters before:
	echo "   editing policy.lua:"
	diff -u "$T/v1.lua" "$T/v2.lua" | tail -n +4 | sed 's/^/     /'
	cp "$T/v2.lua" "$T/policy.new" && mv "$T/policy.new" "$T/policy.lua"
	echo "   luadivert reload (SIGHUP, then the outcome):"
	ns_exec "$A" "$LUADIVERT" reload --pidfile "$T/pid" | sed "s|$T/||; s/ (fnv64 [0-9a-f]*)//; s/^/     /"
	for port in 9000 9001; do wait_for_exit "$(cat "$T/rp$port")" 10; done
	counters after:
	for port in 9000 9001; do
		echo "   port $port: sent 6000, arrived" \
			"$(sed -n 's/.*"unique":\([0-9]*\).*/\1/p' "$T/hot$port.json")," \
			"the last one #$(sed -n 's/.*"max_seq":\([0-9]*\).*/\1/p' "$T/hot$port.json")"
	done
	echo "   9000: nothing lost across the reload; 9001: passed until the reload, dropped after"
	stop
}
demo_hot_reload

printf '\nThe namespaces are removed now. Write your own policy: see README.md and scripts/examples/.\n'

#!/bin/sh
# Every hook diverts where it should, and several hooks at once, on a routed
# path A -- R -- B (R forwards between two veth links):
#   A: output; R: prerouting, forward, postrouting (three hooks in one run,
#   from repeated --hook options); B: input; then R with a comma list and a
#   filter, for IPv4 and IPv6. The diverter accepts and logs each packet, so
#   traffic flows and the log says at which hook each packet was seen.
LDT_AREA=rules-hooks
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
rules_setup
ns_create a; A=$LDT_NS
ns_create r; R=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$R" 0; A_ADDR=$ADDR_A; A6=$ADDR6_A; RA=$ADDR_B; RA6=$ADDR6_B
veth_pair "$R" "$B" 1; B_ADDR=$ADDR_B; B6=$ADDR6_B; RB=$ADDR_A; RB6=$ADDR6_A
ns_exec "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null \
	|| fail "enable forwarding in R"
ip -n "$A" route add 198.18.1.0/24 via "$RA" || fail "route A"
ip -n "$B" route add 198.18.0.0/24 via "$RB" || fail "route B"
ip -n "$A" -6 route add fd00:198:18:1::/64 via "$RA6" || fail "route6 A"
ip -n "$B" -6 route add fd00:198:18:0::/64 via "$RB6" || fail "route6 B"
N=100

check "path A -> B works before any rule" [ "$(udp_count "$A" "$B_ADDR" 9000 $N "$B")" = $N ]

# --- three hooks at once in the router, repeated --hook options
div_start "$R" accept --queue 0 --filter 'udp dst port 9000' \
	--hook prerouting --hook forward --hook postrouting
check "R: traffic still flows (accept)" [ "$(udp_count "$A" "$B_ADDR" 9000 $N "$B")" = $N ]
for h in prerouting forward postrouting; do
	check "R: $N packets at $h" [ "$(div_count "^hook=$h v=4 proto=17 .*dport=9000 ")" = $N ]
done
check "R: none at input/output" [ "$(div_count '^hook=(input|output) ')" = 0 ]
check "R: rules list names the three jumps" \
	[ "$(rules_cmd "$R" list | grep -cE -- '-A (PREROUTING|FORWARD|POSTROUTING) -j LUADIVERT-Q0$')" = 6 ]
div_stop

# --- the same over IPv6, hooks as a comma list
div_start "$R" accept --queue 0 --filter 'udp dst port 9000' --hook prerouting,postrouting
check "R v6: traffic flows" [ "$(udp_count "$A" "$B6" 9000 $N "$B")" = $N ]
check "R v6: $N at prerouting" [ "$(div_count '^hook=prerouting v=6 proto=17 .*dport=9000 ')" = $N ]
check "R v6: $N at postrouting" [ "$(div_count '^hook=postrouting v=6 proto=17 .*dport=9000 ')" = $N ]
check "R v6: none at forward" [ "$(div_count '^hook=forward ')" = 0 ]
div_stop

# --- forward only, dropping: the router stops the flow, its own traffic does not
div_start "$R" drop --queue 0 --filter udp --hook forward
check "R forward drop: A -> B stopped" [ "$(udp_count "$A" "$B_ADDR" 9000 $N "$B")" = 0 ]
check "R forward drop: A -> R itself arrives" [ "$(udp_count "$A" "$RA" 9000 $N "$R")" = $N ]
check "R forward drop: diverted only at forward" [ "$(div_count .)" = "$(div_count '^hook=forward ')" ]
div_stop

# --- input on the receiver, output on the sender
div_start "$B" accept --queue 0 --filter 'udp dst port 9000' --hook input
check "B input: flows" [ "$(udp_count "$A" "$B_ADDR" 9000 $N "$B")" = $N ]
check "B input: $N at input" [ "$(div_count '^hook=input v=4 proto=17 .*dport=9000 ')" = $N ]
check "B input: nothing else" [ "$(div_count .)" = $N ]
div_stop
div_start "$A" accept --queue 0 --filter 'udp dst port 9000' --hook output
check "A output: flows" [ "$(udp_count "$A" "$B6" 9000 $N "$B")" = $N ]
check "A output: $N at output" [ "$(div_count '^hook=output v=6 proto=17 .*dport=9000 ')" = $N ]
check "A output: nothing else" [ "$(div_count .)" = $N ]
div_stop

# --- all five hooks in one namespace: loopback crosses output, postrouting,
#     prerouting and input; forward is installed too
div_start "$A" accept --queue 0 --filter 'udp dst port 9000' --hook all
check "all hooks: loopback flows" [ "$(udp_count "$A" 127.0.0.1 9000 $N)" = $N ]
for h in output postrouting prerouting input; do
	check "all hooks: $N at $h" [ "$(div_count "^hook=$h v=4 proto=17 .*dport=9000 ")" = $N ]
done
check "all hooks: forward jump installed" \
	[ "$(rules_cmd "$A" list | grep -c -- '-A FORWARD -j LUADIVERT-Q0$')" = 2 ]
div_stop
for ns in "$A" "$R" "$B"; do
	check "no rules left in ${ns#"$LDT_PREFIX"}" [ "$(ld_chains "$ns")" = 0 ]
done
ldt_done

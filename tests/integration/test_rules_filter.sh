#!/bin/sh
# Divert rules from --filter, on real traffic over loopback in a namespace.
# The diverter drops every packet it is given and logs it, so what arrives
# and what the log holds show exactly which packets the rules diverted:
#   udp dst port 9000 (IPv4 and IPv6), tcp and port 80, an IPv6-only filter,
#   --family 4, and a filter with no match in one family.
LDT_AREA=rules-filter
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
rules_setup tcpxfer
ns_create a; NS=$LDT_NS
N=200

# --- udp dst port 9000: only that, both families
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output
check "udp 9000 over IPv4: none arrive" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
check "udp 9001 over IPv4: all $N arrive" [ "$(udp_count "$NS" 127.0.0.1 9001 $N)" = $N ]
check "udp 9000 over IPv6: none arrive" [ "$(udp_count "$NS" ::1 9000 $N)" = 0 ]
check "udp 9001 over IPv6: all $N arrive" [ "$(udp_count "$NS" ::1 9001 $N)" = $N ]
check "tcp to 9000 is not diverted" tcp_ok "$NS" 127.0.0.1 9000
check "diverted: $N IPv4 udp/9000 at output" \
	[ "$(div_count '^hook=output v=4 proto=17 .*dport=9000 ')" = $N ]
check "diverted: $N IPv6 udp/9000 at output" \
	[ "$(div_count '^hook=output v=6 proto=17 .*dport=9000 ')" = $N ]
check "diverted nothing else" [ "$(div_count .)" = $((2 * N)) ]
div_stop
check "exit 0 on SIGTERM" [ "$DIV_RC" = 0 ]
check "rules gone after SIGTERM" [ "$(ld_chains "$NS")" = 0 ]

# --- tcp and port 80: both directions of the connection, nothing else
div_start "$NS" drop --queue 0 --filter 'tcp and port 80' --hook output
if tcp_ok "$NS" 127.0.0.1 80; then r=1; else r=0; fi
check "tcp to port 80 cannot connect" [ "$r" = 0 ]
check "tcp to port 81 arrives intact" tcp_ok "$NS" 127.0.0.1 81
check "udp to port 80 arrives" [ "$(udp_count "$NS" 127.0.0.1 80 $N)" = $N ]
check "diverted only tcp port 80 (SYNs)" \
	[ "$(div_count 'proto=6 sport=[0-9]+ dport=80 ')" -ge 1 ]
check "diverted nothing but tcp port 80" \
	[ "$(div_count .)" = "$(div_count 'proto=6 .*(sport=80|dport=80) ')" ]
div_stop

# --- an IPv6-only filter: no IPv4 rules at all
div_start "$NS" drop --queue 0 --filter 'ip6 and udp dst port 9000' --hook output
# (issue 16: luadivert keeps the chain with its offload rules in every family,
# docs/rules.md#offload-divertoffload; what matters is that nothing jumps to it
# and it queues nothing)
check "IPv6 filter: installs no IPv4 NFQUEUE rule and no jump" \
	[ "$(ns_exec "$NS" iptables-nft-save | grep -cE 'NFQUEUE|-j LUADIVERT')" = 0 ]
check "IPv6 filter: udp 9000 over IPv6 dropped" [ "$(udp_count "$NS" ::1 9000 $N)" = 0 ]
check "IPv6 filter: udp 9000 over IPv4 arrives" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = $N ]
check "IPv6 filter: diverted only IPv6" [ "$(div_count '^hook=output v=6 ')" = $N ]
check "IPv6 filter: diverted nothing else" [ "$(div_count .)" = $N ]
div_stop

# --- a filter on addresses and a port range, IPv4 and IPv6 in one expression
div_start "$NS" drop --queue 0 --hook output \
	--filter 'udp and (dst host 127.0.0.1 or dst host ::1) and dst portrange 9100-9199'
check "expression: v4 9150 dropped" [ "$(udp_count "$NS" 127.0.0.1 9150 $N)" = 0 ]
check "expression: v6 9150 dropped" [ "$(udp_count "$NS" ::1 9150 $N)" = 0 ]
check "expression: v4 9200 arrives" [ "$(udp_count "$NS" 127.0.0.1 9200 $N)" = $N ]
div_stop

# --- --family 4 with a filter that matches both
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output --family 4
check "--family 4: installs no IPv6 NFQUEUE rule and no jump" \
	[ "$(ns_exec "$NS" ip6tables-nft-save | grep -cE 'NFQUEUE|-j LUADIVERT')" = 0 ]
check "--family 4: v4 dropped" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
check "--family 4: v6 arrives" [ "$(udp_count "$NS" ::1 9000 $N)" = $N ]
div_stop

# --- no filter: every packet at the hook
div_start "$NS" accept --queue 0 --hook input
udp_count "$NS" 127.0.0.1 9300 $N >/dev/null
udp_count "$NS" ::1 9300 $N >/dev/null
check "no filter: every udp packet diverted at input (v4)" \
	[ "$(div_count '^hook=input v=4 proto=17 .*dport=9300 ')" = $N ]
check "no filter: every udp packet diverted at input (v6)" \
	[ "$(div_count '^hook=input v=6 proto=17 .*dport=9300 ')" = $N ]
div_stop
check "all rules gone at the end" [ "$(ld_chains "$NS")" = 0 ]
ldt_done

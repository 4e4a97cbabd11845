#!/bin/sh
# Both iptables backends: nf_tables (iptables-nft) and x_tables
# (iptables-legacy), chosen explicitly or detected (auto: the one that
# already holds rules in the namespace, nft when neither does); a dead
# instance's rules are found and removed in either backend.
LDT_AREA=rules-backend
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
rules_setup
require_cmd iptables-nft-save iptables-legacy-save ip6tables-nft-save ip6tables-legacy-save
N=100
other() { [ "$1" = nft ] && echo legacy || echo nft; }
all_ready() { [ "$(grep -lE '^ready|: diverting ' "$LDT_TMP"/div.*.out | wc -l)" -ge "$1" ]; }

for b in nft legacy; do
	ns_create "$b"; NS=$LDT_NS
	div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output,input --backend "$b"
	check "$b: chains in $b, both families" [ "$(ld_chains "$NS" "$b")" = 2 ]
	check "$b: nothing in $(other "$b")" [ "$(ld_chains "$NS" "$(other "$b")")" = 0 ]
	check "$b: v4 udp/9000 diverted" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
	check "$b: v6 udp/9000 diverted" [ "$(udp_count "$NS" ::1 9000 $N)" = 0 ]
	check "$b: v4 udp/9001 flows" [ "$(udp_count "$NS" 127.0.0.1 9001 $N)" = $N ]
	check "$b: list names the backend" list_has "$NS" "^$b IPv6, table mangle:"
	div_stop
	check "$b: removed on exit" [ "$(ld_chains "$NS")" = 0 ]

	# kill -9, then cleanup finds the leftovers in this backend
	div_start "$NS" drop --queue 3 --hook output --backend "$b" --fail-closed
	div_stop KILL
	check "$b: kill -9 leaves rules" [ "$(ld_chains "$NS" "$b")" = 2 ]
	check "$b: fail-closed blocks" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
	rules_cmd "$NS" cleanup >/dev/null 2>&1
	check "$b: cleanup removes them" [ "$(ld_chains "$NS")" = 0 ]
	check "$b: traffic flows again" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = $N ]
done

# instances on four queues starting at once share the tables without losing
# each other's rules (nf_tables transactions; the legacy xtables lock)
for b in nft legacy; do
	ns_create "par-$b"; NS=$LDT_NS
	rm -f "$LDT_TMP"/div.*.out
	pids=""
	for q in 0 1 2 3; do
		div_start_bg "$NS" accept --queue $q --filter "udp dst port 900$q" --hook output --backend "$b"
		pids="$pids $DIV_PID"
	done
	if ! wait_until 15 all_ready 4; then
		cat "$LDT_TMP"/div.*.out >&2
		fail "$b: parallel starts did not all get ready"
	fi
	check "$b parallel: 4 queues x 2 families of chains" [ "$(ld_chains "$NS" "$b")" = 8 ]
	check "$b parallel: 8 jumps" [ "$(rules_cmd "$NS" list | grep -c -- '-A OUTPUT -j LUADIVERT-Q')" = 8 ]
	for p in $pids; do kill -TERM "$p"; done
	for p in $pids; do wait_for_exit "$p" 20 || fail "parallel stop"; done
	check "$b parallel: all removed" [ "$(ld_chains "$NS")" = 0 ]
done

# auto in an empty namespace: nft, and no legacy table gets created
ns_create auto1; NS=$LDT_NS
div_start "$NS" drop --queue 0 --filter udp --hook output
check "auto, empty namespace: nft" [ "$(ld_chains "$NS" nft)" = 2 ]
check "auto, empty namespace: no legacy table made" \
	[ -z "$(ns_exec "$NS" cat /proc/net/ip_tables_names /proc/net/ip6_tables_names)" ]
div_stop

# auto where the firewall is legacy: legacy
ns_create auto2; NS=$LDT_NS
ns_exec "$NS" iptables-legacy -w -A INPUT -p tcp --dport 1 -j ACCEPT || fail "legacy rule"
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output
check "auto, legacy rules present: legacy" [ "$(ld_chains "$NS" legacy)" = 2 ]
check "auto, legacy rules present: nothing in nft" [ "$(ld_chains "$NS" nft)" = 0 ]
check "auto legacy: v6 diverted" [ "$(udp_count "$NS" ::1 9000 $N)" = 0 ]
div_stop KILL

# a leftover in legacy is replaced when the queue restarts with nft
div_start "$NS" drop --queue 0 --filter 'udp dst port 9000' --hook output --backend nft
check "restart in nft removed the legacy leftover" [ "$(ld_chains "$NS" legacy)" = 0 ]
check "restart in nft installed there" [ "$(ld_chains "$NS" nft)" = 2 ]
div_stop
check "all gone" [ "$(ld_chains "$NS")" = 0 ]
check "the user's legacy rule is untouched" \
	[ "$(ns_exec "$NS" iptables-legacy-save | grep -c -- '--dport 1 -j ACCEPT')" = 1 ]
ldt_done

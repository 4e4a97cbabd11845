#!/bin/sh
# Packets carrying luadivert's skip mark are not diverted: that is how the
# packets luadivert injects itself (duplicates, new packets) avoid being
# queued again. A user mangle rule placed before luadivert's jump marks some
# datagrams, the way an injected packet arrives already marked; the diverter
# drops everything it is given.
#   all skip bits set -> not diverted; only some bits -> diverted;
#   --skip-mark 0 -> no skip rule; --skip-mark X -> that mark skips (driver);
#   with luadivert itself, the duplicates a policy injects are not diverted.
LDT_AREA=rules-skip
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
rules_setup
ns_create a; NS=$LDT_NS
N=100
SKIP=0x4c440000

for ipt in iptables_ns ip6tables_ns; do
	"$ipt" "$NS" -t mangle -A OUTPUT -p udp --dport 9002 -j MARK --set-xmark $SKIP/$SKIP
	"$ipt" "$NS" -t mangle -A OUTPUT -p udp --dport 9003 -j MARK --set-xmark 0x4c000000/0x4c000000
	"$ipt" "$NS" -t mangle -A OUTPUT -p udp --dport 9004 -j MARK --set-xmark 0x10/0x10
done

div_start "$NS" drop --queue 0 --filter udp --hook output
check "jump goes after the user's own mangle rules" \
	[ "$(ns_exec "$NS" iptables-nft-save -t mangle | grep '^-A OUTPUT' | tail -n 1)" = "-A OUTPUT -j LUADIVERT-Q0" ]
check "unmarked (9000): diverted" [ "$(udp_count "$NS" 127.0.0.1 9000 $N)" = 0 ]
check "skip mark (9002, v4): not diverted" [ "$(udp_count "$NS" 127.0.0.1 9002 $N)" = $N ]
check "skip mark (9002, v6): not diverted" [ "$(udp_count "$NS" ::1 9002 $N)" = $N ]
check "part of the skip bits (9003): diverted" [ "$(udp_count "$NS" 127.0.0.1 9003 $N)" = 0 ]
check "log: no packet with the skip mark" [ "$(div_count 'dport=9002 ')" = 0 ]
check "log: the partly marked ones, with their mark" [ "$(div_count 'dport=9003 mark=0x4c000000 ')" = $N ]
div_stop

if [ "$RULES_IMPL" = driver ]; then
	# --skip-mark is the module's option (rules_driver, `rules print`); luadivert
	# run keeps the skip mark equal to the mark its injector uses
	div_start "$NS" drop --queue 0 --filter udp --hook output --skip-mark 0
	check "--skip-mark 0: no RETURN rule" \
		[ "$(ns_exec "$NS" iptables-nft-save | grep -c -- '-j RETURN')" = 0 ]
	check "--skip-mark 0: marked packets diverted too" [ "$(udp_count "$NS" 127.0.0.1 9002 $N)" = 0 ]
	div_stop

	div_start "$NS" drop --queue 0 --filter udp --hook output --skip-mark 0x10
	check "--skip-mark 0x10: 0x10-marked not diverted" [ "$(udp_count "$NS" ::1 9004 $N)" = $N ]
	check "--skip-mark 0x10: the default mark is diverted now" [ "$(udp_count "$NS" ::1 9002 $N)" = 0 ]
	div_stop
else
	# the real thing: luadivert injects a duplicate of every packet through
	# its raw socket; the duplicates must leave without being diverted again
	for dst in 127.0.0.1 ::1; do
		div_start "$NS" dup --queue 0 --filter 'udp dst port 9000' --hook output
		o="$LDT_TMP/dup.json"; rm -f "$o.ready"
		bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9000 --count $((2 * N)) --idle-ms 500 \
			--time-limit 3 --ready "$o.ready" >"$o"
		rp=$LDT_LAST_PID
		wait_for_file "$o.ready" 5 || fail "udprecv did not start"
		ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst "$dst" --port 9000 --count $N \
			--rate 20000 >/dev/null || fail "udpsend"
		wait "$rp"
		div_stop
		if grep -q ' injected 0 ' "$DIV_OUT"; then
			echo "# skip dup ($dst): this luadivert injected no duplicate (pkt:duplicate not wired yet)"
			continue
		fi
		check "dup ($dst): every packet arrives twice" \
			[ "$(sed -n 's/.*"received":\([0-9]*\).*/\1/p' "$o")" = $((2 * N)) ]
		check "dup ($dst): N of them duplicates" \
			[ "$(sed -n 's/.*"duplicates":\([0-9]*\).*/\1/p' "$o")" = $N ]
		check "dup ($dst): the policy saw each packet once, no injected copy" \
			[ "$(div_count 'dport=9000 ')" = $N ]
	done
fi
check "no rules left" [ "$(ld_chains "$NS")" = 0 ]
check "the user's own rules are untouched" \
	[ "$(ns_exec "$NS" iptables-nft-save -t mangle | grep -c -- '-j MARK')" = 3 ]
ldt_done

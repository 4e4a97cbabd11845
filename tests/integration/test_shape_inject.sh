#!/bin/sh
# core/inject.c on its own (through build/tools/injectsend): packets sent on
# the raw sockets with the skip mark leave, reach the receiver, and are not
# diverted again by a queue rule that RETURNs on the mark (the rule luadivert
# installs); the same traffic without the mark is caught by the queue.
# IPv4 and IPv6; a copy bigger than the MTU is refused and counted.
LDT_AREA=shp-inject
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools injectsend udprecv udpsend
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
MARK=0x4c440000
N=200

# In A: marked packets RETURN, everything else to queue 3, where nobody
# listens (no --queue-bypass): a packet that reaches the queue is dropped.
for t in iptables_ns ip6tables_ns; do
	$t "$A" -A OUTPUT -p udp --dport 9200 -m mark --mark $MARK/$MARK -j RETURN
	$t "$A" -A OUTPUT -p udp --dport 9200 -j NFQUEUE --queue-num 3
done

recv() {  # recv OUT: udprecv in B on port 9200, ready file OUT.ready
	rm -f "$1.ready"
	bg_ns "$B" "$LDT_TOOLS/udprecv" --port 9200 --count "$N" --idle-ms 800 --time-limit 20 \
		--ready "$1.ready" >"$1"
	RP=$LDT_LAST_PID
	wait_for_file "$1.ready" 5 || fail "udprecv did not start"
}

recv "$LDT_TMP/v4.json"
ns_exec "$A" "$LDT_TOOLS/injectsend" --src "$ADDR_A" --dst "$ADDR_B" --port 9200 --count $N \
	--size 100 --rate 5000 >"$LDT_TMP/v4.inj" || fail "injectsend v4"
wait "$RP"
check "IPv4: injector sent all $N" [ "$(json_get "$LDT_TMP/v4.inj" sent)" = $N ]
check "IPv4: all $N marked packets arrive" [ "$(json_get "$LDT_TMP/v4.json" unique)" = $N ]
check "IPv4: none arrives twice" [ "$(json_get "$LDT_TMP/v4.json" duplicates)" = 0 ]

recv "$LDT_TMP/v6.json"
ns_exec "$A" "$LDT_TOOLS/injectsend" --src "$ADDR6_A" --dst "$ADDR6_B" --port 9200 --count $N \
	--size 100 --rate 5000 >"$LDT_TMP/v6.inj" || fail "injectsend v6"
wait "$RP"
check "IPv6: injector sent all $N" [ "$(json_get "$LDT_TMP/v6.inj" sent)" = $N ]
check "IPv6: all $N marked packets arrive" [ "$(json_get "$LDT_TMP/v6.json" unique)" = $N ]

# The mark is what keeps them out of the queue: without it they are caught.
recv "$LDT_TMP/nomark.json"
ns_exec "$A" "$LDT_TOOLS/injectsend" --src "$ADDR_A" --dst "$ADDR_B" --port 9200 --count 20 \
	--size 100 --mark 0 >"$LDT_TMP/nomark.inj" || fail "injectsend without mark"
wait "$RP"
check "unmarked copies go to the queue (none arrive)" [ "$(json_get "$LDT_TMP/nomark.json" received)" = 0 ]
RET=$(iptables_ns "$A" -L OUTPUT -v -n -x | awk '/RETURN/ { print $1; exit }')
QUE=$(iptables_ns "$A" -L OUTPUT -v -n -x | awk '/NFQUEUE/ { print $1; exit }')
check "the RETURN rule saw exactly the $N marked IPv4 packets (got $RET)" [ "$RET" = $N ]
check "the queue rule saw only the 20 unmarked ones (got $QUE)" [ "$QUE" = 20 ]

# Bigger than the veth MTU: raw sockets do not fragment.
ns_exec "$A" "$LDT_TOOLS/injectsend" --src "$ADDR_A" --dst "$ADDR_B" --port 9200 --count 3 \
	--size 3000 >"$LDT_TMP/big.inj" || fail "injectsend big"
check "a copy above the MTU is refused and counted as too_big" \
	[ "$(json_get "$LDT_TMP/big.inj" too_big)" = 3 ]
ldt_done

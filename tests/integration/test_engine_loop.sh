#!/bin/sh
# Packets a policy sends round and round (issue 14, item 8): REPEAT for
# every packet, or a queue verdict to the queue itself, used to loop each
# packet forever. The core gives a packet the default verdict (pass) after
# 32 passes and counts an error: all 10 arrive, each seen 33 times.
# divert.queue(n, { bypass = true }) with nobody on queue n passes packets
# (without the flag the kernel drops them).
LDT_AREA=eng-loop
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=10

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
for LOOP in repeat self; do
	export LOOP
	ld_start "$NS" "$LDT_ROOT/tests/policies/engine_loop.lua" --queue 0
	udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/$LOOP.json" --rate 200
	ld_stop
	check "$LOOP: all $N arrive (got $(json_get "$LDT_TMP/$LOOP.json" unique))" \
		[ "$(json_get "$LDT_TMP/$LOOP.json" unique)" = $N ]
	check "$LOOP: each seen 33 times (received $(ld_counter received))" \
		[ "$(ld_counter received)" = $((N * 33)) ]
	check "$LOOP: one error per packet ($(ld_counter errors))" [ "$(ld_counter errors)" = $N ]
	check "$LOOP: the loop is logged" grep -q 'looped 32 times' "$LD_LOG"
done

LOOP=bypass
export LOOP
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_loop.lua" --queue 0
udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/bypass.json" --rate 1000
ld_stop
check "bypass: queued to an unbound queue, all $N arrive" \
	[ "$(json_get "$LDT_TMP/bypass.json" unique)" = $N ]
check "bypass: no error" [ "$(ld_counter errors)" = 0 ]
ldt_done

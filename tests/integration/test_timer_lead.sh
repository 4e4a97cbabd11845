#!/bin/sh
# `luadivert run --timer-lead auto|USEC` (core/timer_lead.h): the hold timer
# is armed a lead before a held packet is due and the worker polls the rest
# of the way. Bad values stop it with exit status 2 and a message naming
# the option. With auto, the largest fixed lead (1000 us) and 0, UDP
# through 20 ms at the sender's output (copies taken over, sent at release):
# every datagram arrives exactly once, none earlier than its 20 ms (the
# receiving kernel's stamp against the sender's: polling never releases
# early), and datagrams arriving while the worker polls are all read. The
# precision it buys is measured by bench/shape_precision.sh.
LDT_AREA=timer-lead
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend owdrecv
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
POL="$LDT_ROOT/scripts/examples/pass_all.lua"

for bad in -1 abc 1001 1.5 ''; do
	"$LUADIVERT" run "$POL" --timer-lead "$bad" >/dev/null 2>"$LDT_TMP/err"
	rc=$?
	check "--timer-lead '$bad': exit 2" [ "$rc" = 2 ]
	check "--timer-lead '$bad': the message names the option" \
		grep -q -- "--timer-lead: '$bad' is not auto or 0..1000" "$LDT_TMP/err"
done

shape_policy "$LDT_TMP/d20.lua" "delay = 20, seed = 1"
SKIP=0x4c440000   # luadivert's own copies carry it: not queued again
iptables_ns "$A" -A OUTPUT -p udp --dport 9700 -m mark ! --mark $SKIP/$SKIP -j NFQUEUE --queue-num 0
N=3000
for lead in auto 1000 0; do
	ld_start "$A" "$LDT_TMP/d20.lua" --queue 0 --timer-lead "$lead"
	out=$LDT_TMP/owd.$lead
	rm -f "$out.ready"
	bg_ns "$B" "$LDT_TOOLS/owdrecv" --port 9700 --count $N --idle-ms 1000 --time-limit 20 \
		--ready "$out.ready" >"$out"
	rp=$LDT_LAST_PID
	wait_for_file "$out.ready" 5 || fail "owdrecv did not start"
	# 3000 at 5000/s: packets arrive every 200 us, while earlier ones are polled for
	ns_exec "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port 9700 --count $N --rate 5000 \
		--size 64 --time-limit 10 >/dev/null || fail "udpsend"
	wait "$rp"
	ld_stop
	log "--timer-lead $lead: $(cat "$out"); $(grep 'received [0-9]' "$LD_LOG" | tail -n 1)"
	check "--timer-lead $lead: all $N arrive" [ "$(json_get "$out" received)" = $N ]
	check "--timer-lead $lead: none before its 20 ms (min $(json_get "$out" min) us)" \
		within "$(json_get "$out" min)" 19995 1000000
	check "--timer-lead $lead: taken over $N" [ "$(ld_counter taken)" = $N ]
	check "--timer-lead $lead: received $N, passed $N" \
		sh -c '[ "$1" = "$3" ] && [ "$2" = "$3" ]' _ "$(ld_counter received)" "$(ld_counter passed)" $N
	check "--timer-lead $lead: exit status 0" [ "$LD_RC" = 0 ]
done
ldt_done

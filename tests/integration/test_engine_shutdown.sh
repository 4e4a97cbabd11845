#!/bin/sh
# Every packet gets exactly one verdict when the daemon stops while traffic
# flows (SIGTERM, then SIGINT), and when the kernel queue overflows (with and
# without --fail-open): the receiver's count and the counters agree.
LDT_AREA=eng-stop
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=30000

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0 --queue-bypass

for SIG in TERM INT; do
	ld_start "$NS" "$LDT_ROOT/scripts/examples/pass_all.lua" --queue 0
	# stop the daemon a second into a 3-second stream
	( sleep 1; kill -$SIG "$LD_PID" ) &
	UDP_RECV_ARGS="--seqs $LDT_TMP/seqs.$SIG" UDP_WAIT=5 \
		udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/$SIG.json" --rate 10000
	ld_stop
	R=$(json_get "$LDT_TMP/$SIG.json" unique)
	check "SIG$SIG mid-stream: all $N arrive (got $R)" [ "$R" = $N ]
	check "SIG$SIG mid-stream: none twice" [ "$(json_get "$LDT_TMP/$SIG.json" duplicates)" = 0 ]
	GOT=$(ld_counter received)
	check "SIG$SIG: the daemon saw part of the stream ($GOT)" sh -c '[ "$0" -gt 0 ] && [ "$0" -lt "$1" ]' "${GOT:-0}" $N
	check "SIG$SIG: every packet it received got one verdict" \
		[ "$GOT" = "$(( $(ld_counter passed) + $(ld_counter dropped) ))" ]
	check "SIG$SIG: the kernel dropped none" \
		[ "$(ld_counter kernel_queue_dropped)$(ld_counter kernel_user_dropped)" = 00 ]
	check "SIG$SIG: exit status 0" [ "$LD_RC" = 0 ]
done

# A full queue with --fail-open: the kernel accepts what does not fit.
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_slow.lua" --queue 0 --queue-maxlen 16 \
	--hold-max 0 --fail-open
udp_run "$NS" 127.0.0.1 9000 2000 "$LDT_TMP/open.json" --rate 0
ld_stop
check "fail-open: all 2000 arrive" [ "$(json_get "$LDT_TMP/open.json" unique)" = 2000 ]
check "fail-open: the daemon saw only part ($(ld_counter received))" [ "$(ld_counter received)" -lt 2000 ]
check "fail-open: exit status 0" [ "$LD_RC" = 0 ]

# Without it the kernel drops what does not fit, counts it, and we carry on.
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_slow.lua" --queue 0 --queue-maxlen 16 --hold-max 0
udp_run "$NS" 127.0.0.1 9000 2000 "$LDT_TMP/closed.json" --rate 0
kill -USR1 "$LD_PID"
wait_for_output "$LD_LOG" 'kernel_queue_dropped [1-9]' 5
ld_stop
R=$(json_get "$LDT_TMP/closed.json" unique)
KD=$(grep 'kernel_queue_dropped' "$LD_LOG" | head -n1 | sed 's/.*kernel_queue_dropped \([0-9]*\).*/\1/')
check "queue full: the kernel dropped some ($KD) and they are missing ($R arrived)" \
	sh -c '[ "$0" -gt 0 ] && [ "$1" -lt 2000 ]' "${KD:-0}" "${R:-0}"
check "queue full: what the daemon passed arrived" [ "$R" = "$(ld_counter passed)" ]
check "queue full: the daemon survived and exits 0" [ "$LD_RC" = 0 ]
ldt_done

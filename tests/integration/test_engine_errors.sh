#!/bin/sh
# A handler that raises, and one that returns a non-verdict: those packets get
# the default verdict (here drop), are counted, and are logged with file:line,
# rate-limited; every other packet is still handled.
LDT_AREA=eng-err
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=3000

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_errors.lua" --queue 0 --default-verdict drop
UDP_RECV_ARGS="--seqs $LDT_TMP/seqs" udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/r.json" --rate 3000
ld_stop

# expected: the sequence numbers that are multiples of neither 3 nor 5
awk -v n=$N 'BEGIN { for (i = 0; i < n; i++) if (i % 3 && i % 5) print i }' >"$LDT_TMP/want"
sort -n "$LDT_TMP/seqs" >"$LDT_TMP/got"
check "exactly the packets without errors arrive" cmp -s "$LDT_TMP/want" "$LDT_TMP/got"
check "errors counted: 1400 (got $(ld_counter errors))" [ "$(ld_counter errors)" = 1400 ]
check "dropped counted: 1400" [ "$(ld_counter dropped)" = 1400 ]
check "passed counted: 1600" [ "$(ld_counter passed)" = 1600 ]
check "the error is logged with file:line" \
	grep -qE 'engine_errors\.lua:[0-9]+: seq [0-9]+ is a multiple of 3' "$LD_LOG"
check "the non-verdict is logged with the handler's file:line" \
	grep -qE 'engine_errors\.lua:[0-9]+: handler returned not a verdict \(string\), not a verdict' "$LD_LOG"
LINES=$(grep -c 'policy error' "$LD_LOG")
check "the log is rate-limited ($LINES lines for 1400 errors)" [ "$LINES" -lt 100 ]
check "suppressed messages are summarised" grep -q 'similar messages suppressed' "$LD_LOG"
check "exit status 0" [ "$LD_RC" = 0 ]
ldt_done

#!/bin/sh
# ldt: serial (its checks measure delay, rate or loss statistics)
# Loss through shape.pipe on real traffic: 20% random loss over 2000
# datagrams loses a fraction within the binomial bound (4 sigma); the same
# seed drops exactly the same datagrams on a second run, another seed does
# not; a Gilbert-Elliott pipe loses in bursts at its stationary rate.
LDT_AREA=shp-loss
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=2000

shape_policy "$LDT_TMP/loss42.lua" "loss = 0.2, seed = 42"
shape_policy "$LDT_TMP/loss43.lua" "loss = 0.2, seed = 43"
shape_policy "$LDT_TMP/ge.lua" "gemodel = { p = 0.05, r = 0.25, h = 0.1, k = 0.995 }, seed = 5"
# missing SEQS: the sequence numbers 0..N-1 that did not arrive, one per line
missing() { sort -n "$1" | awk -v n=$N '{ seen[$1] = 1 } END { for (i = 0; i < n; i++) if (!(i in seen)) print i }'; }

iptables_ns "$NS" -A OUTPUT -p udp --dport 9102 -j NFQUEUE --queue-num 0
run() {  # run POLICY NAME
	ld_start "$NS" "$1" --queue 0
	UDP_RECV_ARGS="--seqs $LDT_TMP/$2.seqs" udp_run "$NS" 127.0.0.1 9102 $N "$LDT_TMP/$2.json" --rate 2000
	ld_stop
	missing "$LDT_TMP/$2.seqs" >"$LDT_TMP/$2.missing"
	log "$2: $(wc -l <"$LDT_TMP/$2.missing") of $N lost; daemon dropped $(ld_counter dropped)"
}
run "$LDT_TMP/loss42.lua" a
run "$LDT_TMP/loss42.lua" b
run "$LDT_TMP/loss43.lua" c

# 20% of 2000: mean 400, sigma sqrt(2000 * 0.2 * 0.8) = 17.9; 4 sigma = 72.
LOST=$(wc -l <"$LDT_TMP/a.missing")
check "20% loss: $LOST of $N lost, within 400 +- 72" within "$LOST" 328 472
check "the daemon's drop count is the receiver's loss" [ "$(ld_counter dropped)" = "$(wc -l <"$LDT_TMP/c.missing")" ]
check "same seed: the same datagrams are lost" cmp -s "$LDT_TMP/a.missing" "$LDT_TMP/b.missing"
check "other seed: other datagrams are lost" differ "$LDT_TMP/a.missing" "$LDT_TMP/c.missing"

# Gilbert-Elliott: P(bad) = p / (p + r) = 1/6; loss = 5/6 * 0.005 + 1/6 * 0.9 = 0.154.
run "$LDT_TMP/ge.lua" ge
GL=$(wc -l <"$LDT_TMP/ge.missing")
BURSTS=$(awk 'NR > 1 && $1 != prev + 1 { b++ } { prev = $1 } END { print b + (NR > 0) }' "$LDT_TMP/ge.missing")
log "gemodel: $GL lost in $BURSTS bursts"
check "gemodel: loss near 15.4% ($GL of $N)" within "$GL" 150 470
check "gemodel: losses come in bursts (mean burst > 1.5)" awk -v l="$GL" -v b="$BURSTS" 'BEGIN { exit !(b > 0 && l / b > 1.5) }'
ldt_done

#!/bin/sh
# One run with --record, --report and --metrics on real traffic:
#  - record: tcpdump reads the pcapng files (--record-max 64k rotates them);
#    a pcapng reader of our own (not luadivert's writer) finds every diverted
#    packet once, with the comment its decision deserves (verdict, hold time,
#    modified);
#  - report: headless Chromium renders the page; the numbers in the charts'
#    DOM equal the daemon's counters; the file names no external resource;
#  - stats: `luadivert stats` (piped: plain text) finds the endpoint (a unix
#    socket) through the pid file and shows the rate sent;
#  - SIGUSR1 prints a readable table with rates.
LDT_AREA=obs-rec
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_cmd tcpdump python3 chromium
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
REC=$LDT_TMP/run.pcapng REP=$LDT_TMP/run.html
N0=1500 N1=100 N2=100 N3=50 N4=60     # pass (1000/s), drop, held 20 ms, pipe-lost, modified
TOTAL=$((N0 + N1 + N2 + N3 + N4))
PCAPNG="python3 $LDT_ROOT/tests/lib/pcapng_comments.py"

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000:9004 -j NFQUEUE --queue-num 0
ld_start "$NS" "$LDT_ROOT/tests/policies/observe_mix.lua" --queue 0 --record "$REC" --record-max 64k \
	--report "$REP" --metrics "unix:$LDT_TMP/m.sock"
send() { ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port "$1" --count "$2" \
	--rate "${3:-20000}" --time-limit 10 >/dev/null || fail "udpsend $1"; }

# 1.5 s of steady traffic while `stats` watches it through the pid file
bg_ns "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count $N0 --rate 1000 --time-limit 10 >/dev/null
SP=$LDT_LAST_PID
sleep 0.3
ns_exec "$NS" "$LUADIVERT" stats --pidfile "$LD_PIDFILE" --interval 1 --count 1 >"$LDT_TMP/stats.txt" 2>&1
kill -USR1 "$LD_PID"
wait "$SP"
wait_for_output "$LD_LOG" '^  in +[0-9]+ +[0-9.]+$' 5
send 9001 $N1; send 9002 $N2; send 9003 $N3; send 9004 $N4
sleep 0.1   # the last held packets leave 20 ms later
ld_stop
check "luadivert exits 0" [ "$LD_RC" = 0 ]
check "received $TOTAL" [ "$(ld_counter received)" = $TOTAL ]
check "the unix socket is removed at exit" [ ! -e "$LDT_TMP/m.sock" ]

# stats: plain text (no escape codes), a received rate near the 1000/s sent
# (a functional check with a wide margin: the machine is shared and noisy)
RATE=$(awk '$1 == "received" { sub("/s", "", $3); print int($3) }' "$LDT_TMP/stats.txt")
check "stats: received rate $RATE/s within 1000/s +-40%" sh -c "[ '${RATE:-0}' -ge 600 ] && [ '${RATE:-0}' -le 1400 ]"
check "stats: pass verdict row" grep -q '^  verdict pass ' "$LDT_TMP/stats.txt"
check "stats: policy counter row" grep -q 'observe_test_packets_total{queue="0",port="9000"}' "$LDT_TMP/stats.txt"
check "stats: piped output has no escape codes" sh -c "! grep -q \"$(printf '\033')\" '$LDT_TMP/stats.txt'"
[ "$LDT_FAILED" = 0 ] || cat "$LDT_TMP/stats.txt"

# SIGUSR1: a readable table with rates per second, before the line scripts parse
USR1_RATE=$(awk '$1 == "in" && NF == 3 { print int($3); exit }' "$LD_LOG")
check "SIGUSR1: 'in' rate $USR1_RATE/s (since start, 1000/s sent) is > 0 and <= 1400" \
	sh -c "[ '${USR1_RATE:-0}' -gt 0 ] && [ '${USR1_RATE:-0}' -le 1400 ]"
check "SIGUSR1: the one-line form follows" sh -c "grep -A12 'the last' '$LD_LOG' | grep -q ' received [0-9]'"

# record: FILE, FILE.1, ... in order
FILES="$REC"; i=1
while [ -e "$REC.$i" ]; do FILES="$FILES $REC.$i"; i=$((i + 1)); done
check "rotation: several files ($i)" [ "$i" -ge 3 ]
check "rotation: none above 64 KiB" [ "$(find "$LDT_TMP" -name 'run.pcapng*' -size +64k | wc -l)" = 0 ]
check "tcpdump reads each file: $TOTAL packets in all" sh -c \
	"for f in $FILES; do tcpdump -nr \"\$f\" 2>/dev/null || exit 1; done | wc -l | grep -qx $TOTAL"
# shellcheck disable=SC2086
$PCAPNG $FILES >"$LDT_TMP/rec.txt" || fail "pcapng reader: the record is malformed"
cnt() { awk -v p="$1" -v c="$2" '$3 == p { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); if ($0 == c) n++ } END { print n + 0 }' "$LDT_TMP/rec.txt"; }
check "record: 9000 passed untouched" [ "$(cnt 9000 'verdict=pass hold_ms=0.000 modified=no')" = $N0 ]
check "record: 9001 dropped" [ "$(cnt 9001 'verdict=drop hold_ms=0.000 modified=no')" = $N1 ]
check "record: 9002 held 20 ms" [ "$(cnt 9002 'verdict=pass hold_ms=20.000 modified=no')" = $N2 ]
check "record: 9003 lost in the pipe" [ "$(cnt 9003 'verdict=drop hold_ms=0.000 modified=no')" = $N3 ]
check "record: 9004 modified" [ "$(cnt 9004 'verdict=pass hold_ms=0.000 modified=yes')" = $N4 ]
check "record: all outbound (epb_flags)" [ "$(awk '$4 != 2' "$LDT_TMP/rec.txt" | wc -l)" = 0 ]
LAST=${FILES##* }
check "record: the bytes as the policy left them (9004 carries M, not U)" sh -c \
	"tcpdump -nr '$LAST' -X 'udp port 9004' 2>/dev/null | grep -q 4d4d && ! tcpdump -nr '$LAST' -X 'udp port 9004' 2>/dev/null | grep -q 5555"
check "record: nothing left out" grep -q "$TOTAL packets written, 0 not recorded" "$LD_LOG"
[ "$LDT_FAILED" = 0 ] || { grep -E 'record|worker|queue 0: received' "$LD_LOG"
	awk '{ n[$3 " " $5 " " $6 " " $7]++ } END { for (k in n) print n[k], k }' "$LDT_TMP/rec.txt"; }

# report: rendered by Chromium; the DOM's numbers are the counters
check "report: no external resource named" sh -c "! grep -Eiq 'https?:|//[a-z]|src=|href=|url\\(|<script' '$REP'"
ns_exec "$NS" timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
	--disable-component-update --disable-sync --no-first-run --user-data-dir="$LDT_TMP/chromium" \
	--dump-dom "file://$REP" >"$LDT_TMP/dom.html" 2>"$LDT_TMP/chromium.log"
check "report: Chromium rendered it" grep -q 'id="throughput"' "$LDT_TMP/dom.html"
python3 - "$LDT_TMP/dom.html" >"$LDT_TMP/dom.txt" <<'PYEOF' || fail "reading the DOM"
import re, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.svg = None; s.td = None
    def handle_starttag(s, tag, attrs):
        a = dict(attrs)
        if tag == "svg": s.svg = a.get("id") or "delay-" + a.get("data-pipe", "")
        if tag == "svg" and "data-pipe" in a:
            for k in ("packets", "lost", "delayed", "out"):
                print(f"{s.svg} {k} {a['data-' + k]}")
        if tag == "polyline":
            vals = [int(v) for v in a["data-values"].split(",") if v]
            print(f"{s.svg} {a['data-series']} {sum(vals)}")
        if tag == "rect" and "data-le" in a:
            print(f"{s.svg} le={a['data-le']} {a['data-count']}")
        if tag == "td": s.td = a.get("id")
    def handle_data(s, d):
        if s.td and d.strip(): print(f"{s.td} {d.strip()}"); s.td = None
P().feed(open(sys.argv[1]).read())
PYEOF
dom() { awk -v a="$1" -v b="$2" '$1 == a && $2 == b { print $3 }' "$LDT_TMP/dom.txt"; }
check "report: received total = counter" [ "$(awk '$1 == "total-received" { print $2 }' "$LDT_TMP/dom.txt")" = "$(ld_counter received)" ]
check "report: throughput in adds up to received" [ "$(dom throughput in)" = $TOTAL ]
check "report: throughput out adds up to passed" [ "$(dom throughput out)" = "$(ld_counter passed)" ]
check "report: drop verdicts over time add up to dropped" [ "$(dom verdicts drop)" = "$(ld_counter dropped)" ]
check "report: pass verdicts over time add up to $((N0 + N2 + N4))" [ "$(dom verdicts pass)" = $((N0 + N2 + N4)) ]
check "report: pipe loss over time adds up to $N3" [ "$(dom loss pipe_lost)" = $N3 ]
check "report: uplink delayed $N2" [ "$(dom delay-uplink delayed)" = $N2 ]
check "report: uplink's delays in the 20 ms bar" [ "$(dom delay-uplink le=0.02)" = $N2 ]
check "report: lossy lost $N3" [ "$(dom delay-lossy lost)" = $N3 ]
check "report: the run spans several samples" [ "$(grep -o 'data-series="in"[^>]*data-values="[^"]*"' "$REP" | tr ',' '\n' | wc -l)" -ge 2 ]

# replay of the live record's first file through the same policy: the same
# comments, and a report
"$LUADIVERT" replay "$LDT_ROOT/tests/policies/observe_mix.lua" "$REC" -w "$LDT_TMP/replay.pcap" -q \
	--record "$LDT_TMP/replay.pcapng" --report "$LDT_TMP/replay.html" 2>/dev/null || fail "replay"
$PCAPNG "$REC" >"$LDT_TMP/in.txt" || fail "pcapng reader: replay input malformed"
$PCAPNG "$LDT_TMP/replay.pcapng" >"$LDT_TMP/rrec.txt" || fail "pcapng reader: replay record malformed"
RN=$(wc -l <"$LDT_TMP/in.txt")
pc() { awk '$3 != 9004 { $1 = $2 = $4 = ""; print }' "$1" | sort | uniq -c; }
pc "$LDT_TMP/in.txt" >"$LDT_TMP/rec.sum"; pc "$LDT_TMP/rrec.txt" >"$LDT_TMP/rrec.sum"
check "replay: the same comments as live (9000..9003)" cmp -s "$LDT_TMP/rec.sum" "$LDT_TMP/rrec.sum"
check "replay report: received $RN" grep -q "id=\"total-received\">$RN<" "$LDT_TMP/replay.html"

check "--record-max without --record is refused" sh -c \
	"! '$LUADIVERT' run '$LDT_ROOT/scripts/examples/pass_all.lua' --record-max 1M 2>/dev/null"
# bad input: a clear error, exit 1, before the queue is bound
bad() { ns_exec "$NS" "$LUADIVERT" run "$LDT_ROOT/scripts/examples/pass_all.lua" --no-rules \
	--pidfile "$LDT_TMP/bad.pid" "$@" 2>&1; }
OUT=$(bad --metrics nonsense); RC=$?
check "--metrics nonsense: exit 1 naming the address ($OUT)" sh -c "[ $RC = 1 ] && echo '$OUT' | grep -q 'not ADDR:PORT'"
OUT=$(bad --record /nonexistent/dir/x.pcapng); RC=$?
check "--record in a missing directory: exit 1 naming the file" sh -c "[ $RC = 1 ] && echo '$OUT' | grep -q '/nonexistent/dir/x.pcapng'"
ldt_done

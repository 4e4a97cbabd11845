#!/bin/sh
# test_replay_progress.sh - `luadivert replay` draws a progress bar when its
# standard error is a terminal (here a pseudo-terminal from script(1)), and
# stays quiet when it is not, or with --quiet. No root needed.
LDT_AREA=replay-bar
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3 script
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
ldt_tmpdir; T=$LDT_TMP
PY="$LDT_ROOT/tests/integration/replay_pcap.py"
POL="$LDT_ROOT/scripts/examples/pass_all.lua"

python3 - "$PY" "$T/in.pcap" <<'EOF' || fail "cannot write the capture"
import sys, importlib.util
spec = importlib.util.spec_from_file_location("rp", sys.argv[1]); rp = importlib.util.module_from_spec(spec); spec.loader.exec_module(rp)
recs = [(1700000000 * 10**9 + i * 1000, rp.ipv4_udp(rp.SRC4, rp.DST4, 1000, 2000, b"y" * 32, ident=i))
        for i in range(20000)]
rp.write(sys.argv[2], rp.LINKTYPE_RAW, recs)
EOF

# on a terminal: the bar, ending at 100% with the packet count
script -qec "'$LUADIVERT' replay '$POL' '$T/in.pcap' -w '$T/out1.pcap'" /dev/null >"$T/tty.txt" 2>&1
check "a terminal gets a progress bar that ends at 100%" grep -q '100% 20000 packets' "$T/tty.txt"
check "the bar is redrawn in place" grep -q "$(printf '\r')" "$T/tty.txt"

# not a terminal: no bar (the summary is still printed)
"$LUADIVERT" replay "$POL" "$T/in.pcap" -w "$T/out2.pcap" 2>"$T/pipe.txt"
check "no bar when stderr is a file" sh -c "! grep -q '%' '$T/pipe.txt'"
script -qec "'$LUADIVERT' replay --quiet '$POL' '$T/in.pcap' -w '$T/out3.pcap'" /dev/null >"$T/quiet.txt" 2>&1
check "no bar with --quiet" sh -c "! grep -q 'packets' '$T/quiet.txt'"
check "the outputs are the same" cmp -s "$T/out1.pcap" "$T/out2.pcap"
ldt_done

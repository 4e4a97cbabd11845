#!/bin/sh
# test_replay_errors.sh - `luadivert replay` on bad input and bad usage:
# a capture cut in the middle of a record (the error names the record, the
# records before it are written, held ones too, exit 1), a record with an
# impossible length, an unknown link type, a file that is not a capture, a
# policy that does not load (exit 1, no output file), bad arguments (exit 2),
# an output that would overwrite the input, a full disk; and a replay as an
# unprivileged user. No root needed.
LDT_AREA=replay-err
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
ldt_tmpdir; T=$LDT_TMP
PY="$LDT_ROOT/tests/integration/replay_pcap.py"
cd "$T" || fail "cd $T"

# Ten UDP datagrams 1 ms apart over Ethernet, ports 1000+i -> 2000.
python3 - "$PY" <<'EOF' || fail "cannot write the fixtures"
import sys, importlib.util
spec = importlib.util.spec_from_file_location("rp", sys.argv[1]); rp = importlib.util.module_from_spec(spec); spec.loader.exec_module(rp)
S, D = rp.SRC4, rp.DST4
recs = [(1700000000 * 10**9 + i * 10**6,
         rp.ether(rp.ipv4_udp(S, D, 1000 + i, 2000, b"x" * 20, ident=i), 0x0800))
        for i in range(10)]
rp.write("ten.pcap", rp.LINKTYPE_ETHERNET, recs)
rp.write("user0.pcap", 147, recs[:2])
# record 4 claims 300000 captured bytes: libpcap refuses it
b = bytearray(open("ten.pcap", "rb").read())
off = 24
for i in range(3):
    off += 16 + int.from_bytes(b[off + 8:off + 12], "little")
b[off + 8:off + 12] = (300000).to_bytes(4, "little")
open("badlen.pcap", "wb").write(b)
EOF
# cut record 7 in half: 24-byte file header, 6 whole records, half of the 7th
REC=$(( $(wc -c <ten.pcap) - 24 ))
REC=$((REC / 10))
head -c $((24 + 6 * REC + REC / 2)) ten.pcap >cut.pcap
echo "not a capture at all" >junk.pcap

cp "$LDT_ROOT/scripts/examples/pass_all.lua" pass.lua || fail "no pass_all.lua"
# holds every packet 5 ms: held packets must still come out on a read error
cat >hold.lua <<'EOF'
local divert = require "divert"
return function (pkt) pkt:hold(5) return divert.PASS end
EOF
printf 'return function (pkt) return 1 +\n' >syntax.lua

records() { python3 "$PY" dump "$1" | wc -l; }
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in $1:" >&2; cat "$1" >&2; return 1; }; }
status() { [ "$1" = "$2" ] || { echo "  exit status $1, expected $2" >&2; return 1; }; }

"$LUADIVERT" replay -q pass.lua cut.pcap -w cut.out 2>cut.err; rc=$?
check "cut capture: exit 1" status "$rc" 1
check "cut capture: error names record 7" has cut.err "record 7"
check "cut capture: the 6 records before it are written" [ "$(records cut.out)" = 6 ]

"$LUADIVERT" replay -q hold.lua cut.pcap -w held.out 2>held.err; rc=$?
check "cut capture, held packets: exit 1" status "$rc" 1
check "cut capture, held packets: all 6 released into the output" [ "$(records held.out)" = 6 ]

"$LUADIVERT" replay -q pass.lua badlen.pcap -w badlen.out 2>badlen.err; rc=$?
check "impossible record length: exit 1" status "$rc" 1
check "impossible record length: error names record 4" has badlen.err "record 4"
check "impossible record length: 3 records written" [ "$(records badlen.out)" = 3 ]

"$LUADIVERT" replay -q pass.lua user0.pcap -w user0.out 2>user0.err; rc=$?
check "unknown link type: exit 1" status "$rc" 1
check "unknown link type: says so" has user0.err "link type 147"
check "unknown link type: no output file" [ ! -e user0.out ]

"$LUADIVERT" replay -q pass.lua junk.pcap -w junk.out 2>junk.err; rc=$?
check "not a capture: exit 1" status "$rc" 1
check "not a capture: says so" has junk.err "not a readable capture"

"$LUADIVERT" replay -q pass.lua missing.pcap -w missing.out 2>missing.err; rc=$?
check "missing input: exit 1" status "$rc" 1
check "missing input: names it" has missing.err "missing.pcap"

"$LUADIVERT" replay -q syntax.lua ten.pcap -w syntax.out 2>syntax.err; rc=$?
check "policy with a syntax error: exit 1" status "$rc" 1
check "policy with a syntax error: file:line" has syntax.err "syntax.lua:"
check "policy with a syntax error: no output file" [ ! -e syntax.out ]

"$LUADIVERT" replay -q nosuch.lua ten.pcap -w nosuch.out 2>nosuch.err; rc=$?
check "missing policy: exit 1" status "$rc" 1
check "missing policy: no output file" [ ! -e nosuch.out ]

"$LUADIVERT" replay -q pass.lua ten.pcap 2>usage1.err; rc=$?
check "no -w: exit 2" status "$rc" 2
check "no -w: usage" has usage1.err "usage:"
"$LUADIVERT" replay -q pass.lua ten.pcap -w x.out --batch 0 2>usage2.err; rc=$?
check "--batch 0: exit 2" status "$rc" 2
"$LUADIVERT" replay -q pass.lua ten.pcap -w x.out --seed abc 2>usage3.err; rc=$?
check "--seed abc: exit 2" status "$rc" 2
"$LUADIVERT" replay -q pass.lua -w x.out 2>usage4.err; rc=$?
check "no input: exit 2" status "$rc" 2
"$LUADIVERT" replay --help >help.out 2>&1; rc=$?
check "--help: exit 0" status "$rc" 0
check "--help: usage" has help.out "usage:"

cp ten.pcap same.pcap
"$LUADIVERT" replay -q pass.lua same.pcap -w same.pcap 2>same.err; rc=$?
check "output = input: exit 1" status "$rc" 1
check "output = input: input untouched" cmp -s ten.pcap same.pcap

if [ -w /dev/full ]; then
	"$LUADIVERT" replay -q pass.lua ten.pcap -w /dev/full 2>full.err; rc=$?
	check "full disk: exit 1" status "$rc" 1
	check "full disk: says so" has full.err "write error"
fi

"$LUADIVERT" replay -q pass.lua ten.pcap -w ok.out 2>ok.err; rc=$?
check "whole capture: exit 0" status "$rc" 0
check "whole capture: output equals input" python3 "$PY" same ten.pcap ok.out

# no root needed: as nobody, when we are root and can become nobody
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	mkdir nobody && chmod 755 "$T" && chmod 777 nobody
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LUADIVERT" replay -q pass.lua ten.pcap -w nobody/out.pcap 2>nobody.err; rc=$?
	if grep -q "Permission denied" nobody.err; then
		log "skipping the unprivileged run: $(head -n 1 nobody.err)"
	else
		check "as nobody: exit 0" status "$rc" 0
		check "as nobody: output equals input" python3 "$PY" same ten.pcap nobody/out.pcap
	fi
fi
ldt_done

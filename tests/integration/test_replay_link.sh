#!/bin/sh
# test_replay_link.sh - `luadivert replay` finds the IP packet behind every
# link-layer header it supports and puts the header back in front of the
# changed packet: Ethernet (802.1Q, 802.1ad), raw IP (LINKTYPE_RAW, _IPV4,
# _IPV6), Linux cooked SLL (with a VLAN tag) and SLL2, BSD loopback (NULL in
# either byte order, LOOP) and PPP (with and without address/control, with a
# compressed protocol field). Frames that are not IP are copied untouched.
# The policy marks each packet with the hardware protocol it was given and
# rewrites port 80 to 8080. No root needed.
LDT_AREA=replay-link
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
ldt_tmpdir; T=$LDT_TMP
cd "$T" || fail "cd $T"
cp "$LDT_ROOT/tests/integration/replay_pcap.py" "$T/rp.py" || fail "no replay_pcap.py"

cat >links.py <<'EOF'
import struct, sys
import rp

S4, D4, S6, D6 = rp.SRC4, rp.DST4, rp.SRC6, rp.DST6

def v4(port): return rp.ipv4_udp(S4, D4, 1234, port, b"link test v4")
def v6(port): return rp.ipv6_udp(S6, D6, 1234, port, b"link test v6")

MAC = b"\x02\x00\x00\x00\x00\x01\x00\x00"
def sll(proto): return struct.pack("!HHH8sH", 0, 1, 6, MAC, proto)
def sll2(proto): return struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, MAC)
def eth(proto, tags=()): return rp.ether(b"", proto, tags)

# name: (linktype, [(link header, "4" | "6" | raw non-IP bytes)])
CASES = {
    "ether": (1, [(eth(0x0800), "4"), (eth(0x86dd), "6"), (eth(0x0806), b"\0" * 28)]),
    "vlan": (1, [(eth(0x0800, [(0x8100, 7)]), "4"),
                 (eth(0x86dd, [(0x88a8, 1), (0x8100, 7)]), "6")]),
    "raw": (101, [(b"", "4"), (b"", "6"), (b"", b"\x50" + b"\0" * 19)]),
    "ipv4": (228, [(b"", "4")]),
    "ipv6": (229, [(b"", "6")]),
    "sll": (113, [(sll(0x0800), "4"), (sll(0x86dd), "6"), (sll(0x0806), b"\0" * 28),
                  (sll(0x8100) + struct.pack("!HH", 7, 0x0800), "4")]),
    "sll2": (276, [(sll2(0x0800), "4"), (sll2(0x86dd), "6"), (sll2(0x0806), b"\0" * 28)]),
    "null": (0, [(struct.pack("<I", 2), "4"), (struct.pack("<I", 30), "6"),
                 (struct.pack("<I", 24), "6"), (struct.pack(">I", 2), "4"),
                 (struct.pack("<I", 7), b"\0" * 20)]),
    "loop": (108, [(struct.pack(">I", 2), "4"), (struct.pack(">I", 28), "6")]),
    "ppp": (9, [(b"\xff\x03\x00\x21", "4"), (b"\xff\x03\x00\x57", "6"), (b"\x21", "4"),
                (b"\xff\x03\xc0\x23", b"\x02\x01\x00\x05\x00")]),
}
BASE = 1700000000 * 10**9

def records(name, port):
    lt, recs = CASES[name]
    out = []
    for i, (hdr, what) in enumerate(recs):
        body = v4(port) if what == "4" else v6(port) if what == "6" else what
        out.append((BASE + i * 1000, hdr + body))
    return lt, out

if sys.argv[1] == "make":
    for name in CASES:
        lt, recs = records(name, 80)
        rp.write(name + ".pcap", lt, recs)
    print(" ".join(CASES))
elif sys.argv[1] == "check":
    name, path = sys.argv[2], sys.argv[3]
    lt, want = records(name, 8080)
    got = rp.read(path)
    if got.linktype != lt:
        sys.exit("  link type %d, expected %d" % (got.linktype, lt))
    got = [(r[0], r[2]) for r in got.records]
    if got != want:
        for n, (g, w) in enumerate(zip(got, want)):
            if g != w:
                sys.exit("  record %d: %s, expected %s" % (n + 1, g[1].hex(), w[1].hex()))
        sys.exit("  %d records, expected %d" % (len(got), len(want)))
elif sys.argv[1] == "marks":
    # the mark column of each record: hw_proto, or - for not IP
    lt, recs = CASES[sys.argv[2]]
    print(" ".join("0x800" if w == "4" else "0x86dd" if w == "6" else "-" for _, w in recs))
EOF
NAMES=$(python3 links.py make) || fail "cannot write the fixtures"

cat >link.lua <<'EOF'
local divert = require "divert"
return function (pkt)
	pkt:set_mark(pkt:hw_proto())
	local udp = pkt:udp()
	if udp and udp:dst_port() == 80 then udp:dst_port(8080) end
	return divert.PASS
end
EOF

for n in $NAMES; do
	if ! "$LUADIVERT" replay -q link.lua "$n.pcap" -w "$n.out" --verdicts "$n.v" 2>"$n.err"; then
		sed 's/^/  /' "$n.err" >&2
		check "$n: replays" false
		continue
	fi
	check "$n: IP packets changed behind the same link header, others untouched" \
		python3 links.py check "$n" "$n.out"
	marks=$(sed 1d "$n.v" | awk '{ printf "%s%s", sep, $3; sep = " " }')
	check "$n: the policy got each packet's hardware protocol" \
		[ "$marks" = "$(python3 links.py marks "$n")" ]
done
ldt_done

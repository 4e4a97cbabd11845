#!/bin/sh
# test_replay_edges.sh - replay keeps what a capture says (issue 14, items
# 13-16): time stamps from 2^31 s on (2038) come back as they went in, and
# ones a pcap file cannot hold (2^32 s, from a pcapng) are a clear error
# with the other records written; a wire length of 0 stays 0; the link
# type's FCS bits stay; a flood of policy errors ends with "N similar
# messages suppressed"; NFLOG and Cisco HDLC captures are read, and a
# changed packet gets its NFLOG payload length fixed. No root needed.
LDT_AREA=replay-edges
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
ldt_tmpdir; T=$LDT_TMP
cd "$T" || fail "cd $T"
cp "$LDT_ROOT/tests/integration/replay_pcap.py" "$T/rp.py" || fail "no replay_pcap.py"

cat >edges.py <<'PYEOF'
import struct, sys
import rp

def udp4(port, n=0): return rp.ipv4_udp(rp.SRC4, rp.DST4, 1234, port, b"edge %d" % n)
def udp6(port): return rp.ipv6_udp(rp.SRC6, rp.DST6, 1234, port, b"edge v6")

def pcap(path, linktype, recs):
    """recs: (sec, usec, bytes, wirelen); the link type written as given"""
    out = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)]
    for sec, usec, data, wire in recs:
        out.append(struct.pack("<IIII", sec, usec, len(data), wire) + data)
    open(path, "wb").write(b"".join(out))

def pcapng(path, linktype, recs):
    """recs: (ts_us, data): microsecond resolution, 64-bit time stamps"""
    def block(t, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", t, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    out = [block(0x0a0d0d0a, struct.pack("<IHHq", 0x1a2b3c4d, 1, 0, -1)),
           block(1, struct.pack("<HHI", linktype, 0, 65535))]
    for ts, data in recs:
        out.append(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xffffffff, len(data),
                                        len(data)) + data))
    open(path, "wb").write(b"".join(out))

def nflog(ip, family=2):
    tlvs = struct.pack("=HH", 8, 1) + struct.pack("!HBB", 0x0800, 3, 0)      # packet header
    prefix = b"luadivert test prefix, long enough\0"
    tlvs += struct.pack("=HH", 4 + len(prefix), 10) + prefix + b"\0" * (-len(prefix) % 4)
    tlvs += struct.pack("=HH", 4 + len(ip), 9) + ip + b"\0" * (-len(ip) % 4)
    return struct.pack("!BBH", family, 0, 7) + tlvs

def records(path):
    b = open(path, "rb").read()
    off = 24
    while off + 16 <= len(b):
        sec, frac, cap, wire = struct.unpack("<IIII", b[off:off + 16])
        yield sec, frac, wire, b[off + 16:off + 16 + cap]
        off += 16 + cap

cmd = sys.argv[1]
if cmd == "make":
    pcap("ts.pcap", 101, [(2**31 - 1, 5, udp4(80, 1), 0), (2**31 + 5, 6, udp4(80, 2), 0),
                          (2**32 - 1, 999999, udp4(80, 3), 0)])
    pcapng("ts64.pcapng", 101, [(1700000000 * 10**6, udp4(80, 1)),
                                (2**32 * 10**6 + 7, udp4(80, 2)),
                                (1700000001 * 10**6, udp4(80, 3))])
    pcap("wire.pcap", 101, [(1700000000, 0, udp4(80, 1), 0), (1700000000, 1, udp4(80, 2), 500)])
    pcap("fcs.pcap", 1 | 0x04000000 | (4 << 28), [(1700000000, 0, rp.ether(udp4(80), 0x0800), 0)])
    pcap("nflog.pcap", 239, [(1700000000, 0, nflog(udp4(80)), 0),
                             (1700000000, 1, nflog(udp6(80), 10), 0)])
    pcap("chdlc.pcap", 104, [(1700000000, 0, b"\x0f\x00\x08\x00" + udp4(80), 0),
                             (1700000000, 1, b"\x0f\x00\x86\xdd" + udp6(80), 0),
                             (1700000000, 2, b"\x8f\x00\x80\x35" + b"\0" * 28, 0)])
    pcap("errors.pcap", 101, [(1700000000, i, udp4(80, i), 0) for i in range(300)])
elif cmd == "ts":
    print(" ".join("%d.%06d" % (s, f) for s, f, _, _ in records(sys.argv[2])))
elif cmd == "wire":
    print(" ".join(str(w) for _, _, w, _ in records(sys.argv[2])))
elif cmd == "linktype":
    print("0x%08x" % struct.unpack("<I", open(sys.argv[2], "rb").read()[20:24])[0])
elif cmd == "report":
    # one line per output: name=value, so the shell starts python once
    import os
    def ts(p): return " ".join("%d.%06d" % (s, f) for s, f, _, _ in records(p))
    def wire(p): return " ".join(str(w) for _, _, w, _ in records(p))
    def lt(p): return "0x%08x" % struct.unpack("<I", open(p, "rb").read()[20:24])[0]
    for key, fn, p in (("ts", ts, "ts.out"), ("ts64", ts, "ts64.out"), ("wire", wire, "wire.out"),
                       ("linktype", lt, "fcs.out")):
        print("%s=%s" % (key, fn(p) if os.path.exists(p) and os.path.getsize(p) >= 24 else "none"))
    out = []
    if os.path.exists("nflog.out") and os.path.getsize("nflog.out") >= 24:
        for _, _, _, f in records("nflog.out"):
            off = 4
            while off + 4 <= len(f):
                l, t = struct.unpack("=HH", f[off:off + 4])
                if t == 9:
                    ip = f[off + 4:]
                    v4 = ip[0] >> 4 == 4
                    n = struct.unpack("!H", ip[2:4])[0] if v4 else 40 + struct.unpack("!H", ip[4:6])[0]
                    hl = (ip[0] & 15) * 4 if v4 else 40
                    out.append("tlv=%d ip=%d port=%d" % (l, n, struct.unpack("!H", ip[hl + 2:hl + 4])[0]))
                    break
                off += (l + 3) & ~3
    print("nflog=" + " ".join(out))
elif cmd == "nflog":
    # each record: the payload TLV's length, the IP length it holds, the UDP port
    for _, _, _, f in records(sys.argv[2]):
        off = 4
        while off + 4 <= len(f):
            l, t = struct.unpack("=HH", f[off:off + 4])
            if t == 9:
                ip = f[off + 4:]
                v4 = ip[0] >> 4 == 4
                n = struct.unpack("!H", ip[2:4])[0] if v4 else 40 + struct.unpack("!H", ip[4:6])[0]
                hl = (ip[0] & 15) * 4 if v4 else 40
                print("tlv=%d ip=%d port=%d" % (l, n, struct.unpack("!H", ip[hl + 2:hl + 4])[0]))
                break
            off += (l + 3) & ~3
PYEOF
python3 edges.py make || fail "cannot write the fixtures"

cat >grow.lua <<'LUAEOF'
local divert = require "divert"
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 80 then
		udp:dst_port(8080)
		assert(pkt:append("+grown")); assert(pkt:fix_lengths()); assert(pkt:fix_checksums())
	end
	return divert.PASS
end
LUAEOF
printf 'local divert = require "divert"\nreturn function () return divert.PASS end\n' >pass.lua
printf 'return function () error("always") end\n' >fail.lua

# every replay first, then one python run reads the outputs (python starts slowly)
"$LUADIVERT" replay -q pass.lua ts.pcap -w ts.out 2>ts.err
"$LUADIVERT" replay -q pass.lua ts64.pcapng -w ts64.out 2>ts64.err
RC64=$?
"$LUADIVERT" replay -q pass.lua wire.pcap -w wire.out 2>/dev/null
"$LUADIVERT" replay -q grow.lua fcs.pcap -w fcs.out 2>/dev/null
"$LUADIVERT" replay fail.lua errors.pcap -w errors.out 2>errors.err
"$LUADIVERT" replay -q grow.lua nflog.pcap -w nflog.out --verdicts nflog.v 2>nflog.err
RCN=$?
"$LUADIVERT" replay -q grow.lua chdlc.pcap -w chdlc.out --verdicts chdlc.v 2>chdlc.err
RCH=$?
python3 edges.py report >report || fail "cannot read the outputs"
val() { sed -n "s/^$1=//p" report; }

# 13: time stamps
check "2^31 and 2^32-1 s: replayed with the same time stamps ($(val ts))" \
	[ "$(val ts)" = "2147483647.000005 2147483653.000006 4294967295.999999" ]
check "a time stamp past 2^32 s: exit status 1 (got $RC64)" [ "$RC64" = 1 ]
check "... with a clear message" grep -q 'past what a pcap file holds' ts64.err
check "... and the other records written ($(val ts64))" \
	[ "$(val ts64)" = "1700000000.000000 1700000001.000000" ]

# 14: record and file headers
check "a wire length of 0 stays 0 ($(val wire))" [ "$(val wire)" = "0 500" ]
check "the link type keeps its FCS bits ($(val linktype))" [ "$(val linktype)" = 0x44000001 ]

# 15: suppressed messages
N=$(grep -c 'policy error' errors.err)
check "300 policy errors: the log is limited ($N lines)" [ "$N" -lt 50 ]
check "... and says how many were suppressed" grep -qE '[(][0-9]+ similar messages suppressed[)]' errors.err
S=$(sed -n 's/.*(\([0-9]*\) similar messages suppressed).*/\1/p' errors.err | awk '{ s += $1 } END { print s + 0 }')
check "... every error is shown or counted ($N + $S = 300)" [ $((N + S)) = 300 ]

# 16: NFLOG and Cisco HDLC
[ "$RCN" = 0 ] || sed 's/^/  /' nflog.err >&2
check "NFLOG: replays (exit $RCN)" [ "$RCN" = 0 ]
check "NFLOG: both packets reach the policy as IP" [ "$(grep -c ' PASS ' nflog.v)" = 2 ]
check "NFLOG: the payload TLV length follows the grown packet ($(val nflog))" \
	[ "$(val nflog)" = "tlv=44 ip=40 port=8080 tlv=65 ip=61 port=8080" ]
check "NFLOG: tcpdump reads the output" sh -c 'tcpdump -nr nflog.out 2>/dev/null | grep -c "[.]8080: UDP" | grep -qx 2'
[ "$RCH" = 0 ] || sed 's/^/  /' chdlc.err >&2
check "Cisco HDLC: replays (exit $RCH)" [ "$RCH" = 0 ]
check "Cisco HDLC: two IP packets, one other frame" \
	[ "$(grep -c ' PASS ' chdlc.v) $(grep -c NONIP chdlc.v)" = "2 1" ]
check "Cisco HDLC: tcpdump reads the changed packets" \
	sh -c 'tcpdump -nr chdlc.out 2>/dev/null | grep -c "[.]8080: UDP" | grep -qx 2'
ldt_done

#!/bin/sh
# test_replay_policies.sh - what `luadivert replay` writes for each kind of
# decision, on a capture made here (Ethernet; IPv4 and IPv6 UDP, 802.1Q and
# 802.1ad tags, a padded minimum-size frame, ARP):
#   drop     -> those records are missing, the rest unchanged
#   rewrite  -> the expected bytes (port change, payload replaced), link
#               header kept, padding of a changed frame gone
#   hold 50  -> every IP record exactly 50 ms later (micro- and nanosecond
#               captures), ARP at its own time, output in release order
#   rate     -> a burst leaves spaced to the rate (a token bucket written
#               here, and shape.pipe{rate=...})
#   seed     -> same --seed: identical files, whatever --batch; other seed:
#               different decisions
#   dup      -> two copies; mark -> in the verdicts file
#   errors   -> the default verdict (--default-verdict), counted
#   queue(n), REPEAT -> written like PASS, counted by name
#   hold table full (--max-held) -> the newest dropped, counted, OVERFLOW
#   120000 packets parsed, dropped, held -> the Lua heap stays flat
#   snap     -> a snap-length-truncated packet shows len < orig_len to the
#               policy; changes to it are refused, as live
# No root needed.
LDT_AREA=replay-pol
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
ldt_tmpdir; T=$LDT_TMP
cd "$T" || fail "cd $T"
cp "$LDT_ROOT/tests/integration/replay_pcap.py" "$T/rp.py" || fail "no replay_pcap.py"

# ---------------------------------------------------------------- fixtures
# chk.py make: writes the captures; chk.py MODE OUT: checks an output.
cat >chk.py <<'EOF'
import struct, sys
import rp

S4, D4, S6, D6 = rp.SRC4, rp.DST4, rp.SRC6, rp.DST6
ARP = bytes.fromhex("0001080006040001020000000001c6120001000000000000c6120002")
BASE = 1700000000 * 10**9 + 123456 * 1000      # microsecond capture
BASE_NS = 1700000000 * 10**9 + 987654321       # nanosecond capture
N, GAP = 40, 10**6                             # 40 records, 1 ms apart

def pad(f):
    return f + b"\0" * (60 - len(f)) if len(f) < 60 else f

def frame(i, dport=None, payload=None):
    """Record i of mix.pcap; dport/payload override what the rewrite changes."""
    k = i % 8
    if k == 0:
        return rp.ether(rp.ipv4_udp(S4, D4, 1000 + i, 53, b"q" * 20, ident=i), 0x0800)
    if k == 1:
        return rp.ether(rp.ipv4_udp(S4, D4, 1000 + i, dport or 80, b"a" * 30, ident=i), 0x0800)
    if k == 2:
        return rp.ether(rp.ipv6_udp(S6, D6, 1000 + i, dport or 80, b"b" * 30), 0x86dd)
    if k == 3:
        return rp.ether(rp.ipv4_udp(S4, D4, 1000 + i, dport or 80, b"c" * 10, ident=i), 0x0800,
                        [(0x8100, 5)])
    if k == 4:
        return rp.ether(rp.ipv6_udp(S6, D6, 1000 + i, dport or 80, b"d" * 10), 0x86dd,
                        [(0x88a8, 100), (0x8100, 5)])
    if k == 5:   # 46-byte frame: the capture shows it padded to 60
        f = rp.ether(rp.ipv4_udp(S4, D4, 1000 + i, dport or 80, b"e" * 4, ident=i), 0x0800)
        return f if dport else pad(f)
    if k == 6:
        return pad(rp.ether(ARP, 0x0806))
    return rp.ether(rp.ipv4_udp(S4, D4, 1000 + i, 9, payload or b"f" * 100, ident=i), 0x0800)

def is_ip(i):
    return i % 8 != 6

def make():
    rp.write("mix.pcap", rp.LINKTYPE_ETHERNET, [(BASE + i * GAP, frame(i)) for i in range(N)])
    rp.write("mixns.pcap", rp.LINKTYPE_ETHERNET,
             [(BASE_NS + i * GAP + i * 7, frame(i)) for i in range(N)], nano=True)
    # a burst of 20 equal packets at the same instant, for the rate tests
    # (time 1000 s: small enough for exact doubles in the policy)
    rp.write("burst.pcap", rp.LINKTYPE_ETHERNET,
             [(1000 * 10**9, frame(7)) for _ in range(20)])
    # snap length 80: the 128-byte IP packets are cut to 66, the 58-byte ones whole
    recs = []
    for i in range(4):
        f = frame(7) if i % 2 else frame(1)
        recs.append((BASE + i * GAP, f[:80], len(f)))
    rp.write("snap.pcap", rp.LINKTYPE_ETHERNET, recs, snaplen=80)
    # 120000 records cycling through the mix, 10 us apart
    rp.write("long.pcap", rp.LINKTYPE_ETHERNET,
             [(BASE + i * 10000, frame(i % N)) for i in range(120000)])

def out(path):
    return rp.read(path).records

def fail(msg):
    print("  " + msg)
    sys.exit(1)

def expect(got, want):
    if len(got) != len(want):
        fail("%d records, expected %d" % (len(got), len(want)))
    for n, (g, w) in enumerate(zip(got, want)):
        if g[0] != w[0] or g[2] != w[1] or g[1] != len(w[1]):
            fail("output record %d: ts %d len %d %s, expected ts %d len %d %s" % (
                n + 1, g[0], g[1], g[2].hex(), w[0], len(w[1]), w[1].hex()))

mode = sys.argv[1]
if mode == "make":
    make()
elif mode == "drop":
    expect(out(sys.argv[2]), [(BASE + i * GAP, frame(i)) for i in range(N) if i % 8 != 0])
elif mode == "rewrite":
    want = []
    for i in range(N):
        k = i % 8
        if k in (1, 2, 3, 4, 5):
            want.append((BASE + i * GAP, frame(i, dport=8080)))
        elif k == 7:
            want.append((BASE + i * GAP, frame(i, payload=b"replaced by the policy " * 9)))
        else:
            want.append((BASE + i * GAP, frame(i)))
    expect(out(sys.argv[2]), want)
elif mode in ("delay", "delayns"):
    base = BASE if mode == "delay" else BASE_NS
    step = 0 if mode == "delay" else 7
    ev = [(base + i * (GAP + step) + (50 * 10**6 if is_ip(i) else 0), frame(i)) for i in range(N)]
    ev.sort(key=lambda e: e[0])
    expect(out(sys.argv[2]), ev)
elif mode == "rate":
    # 20 x 128-byte IP packets at 1 Mbit/s: one every 1024 us
    ts = [r[0] for r in out(sys.argv[2])]
    if len(ts) != 20:
        fail("%d records, expected 20" % len(ts))
    want = (len(frame(7)) - 14) * 8 * 10**9 // 10**6
    for a, b in zip(ts, ts[1:]):
        if abs((b - a) - want) > 2000:
            fail("gap %d ns, expected %d ns (+-2 us): %s" % (b - a, want, ts))
    # at once (token bucket) or after its own transmission time (a link)
    if ts[0] - 1000 * 10**9 not in (0, want):
        fail("first packet left at %d, expected at 1000 s or one gap later" % ts[0])
elif mode == "dup":
    want = []
    for i in range(N):
        if i % 8:
            want += [(BASE + i * GAP, frame(i))] * (2 if i % 8 == 1 else 1)
    expect(out(sys.argv[2]), want)
elif mode == "ndiff":
    a, b = out(sys.argv[2]), out(sys.argv[3])
    if a == b:
        fail("different seeds gave the same output")
else:
    fail("unknown mode " + mode)
EOF
python3 chk.py make || fail "cannot write the fixtures"

# ---------------------------------------------------------------- policies
# the examples a user starts from
cp "$LDT_ROOT/scripts/examples/pass_all.lua" pass.lua || fail "no pass_all.lua"
cp "$LDT_ROOT/scripts/examples/drop_dns.lua" drop.lua || fail "no drop_dns.lua"
cat >rewrite.lua <<'EOF'
local divert = require "divert"
local new = string.rep("replaced by the policy ", 9)
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 80 then udp:dst_port(8080) end
	if udp and udp:dst_port() == 9 then assert(pkt:set_payload(new)) end
	return divert.PASS
end
EOF
cat >delay.lua <<'EOF'
local divert = require "divert"
return function (pkt) pkt:hold(50) return divert.PASS end
EOF
cat >bucket.lua <<'EOF'
-- a token bucket with no burst: 1 Mbit/s of IP bytes
local divert = require "divert"
local BYTES_PER_NS = 1e6 / 8 / 1e9
local free_at = 0
return function (pkt)
	local now = pkt:time()
	local start = now > free_at and now or free_at
	free_at = start + pkt:len() / BYTES_PER_NS
	if start > now then pkt:hold((start - now) / 1e6) end
	return divert.PASS
end
EOF
cat >pipe.lua <<'EOF'
local divert = require "divert"
local shape = require "divert.shape"
local pipe = shape.pipe{ rate = "1mbit" }
return function (pkt) return pipe(pkt) end
EOF
cat >random.lua <<'EOF'
local divert = require "divert"
local shape = require "divert.shape"
local pipe = shape.pipe{ loss = 0.3, delay = 10, jitter = 5, distribution = "normal" }
return function (pkt) return pipe(pkt) end
EOF
cat >dupmark.lua <<'EOF'
local divert = require "divert"
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 53 then return divert.DROP end
	if udp and udp:dst_port() == 80 and pkt:ipv4() and pkt:len() > 40 then
		pkt:duplicate(1)
		pkt:set_mark(7)
	end
	return divert.PASS
end
EOF
# a handler that fails on port 53: those packets get the default verdict
cat >fails.lua <<'EOF'
local divert = require "divert"
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 53 then error("no DNS here") end
	return divert.PASS
end
EOF
# verdicts with no meaning offline: written, and counted by name
cat >queue.lua <<'EOF'
local divert = require "divert"
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 80 then return divert.queue(3) end
	if udp and udp:dst_port() == 9 then return divert.REPEAT end
	return divert.PASS
end
EOF
# parse, drop, hold: after warming up, the Lua heap must not grow
cat >alloc.lua <<'EOF'
local divert = require "divert"
local WARM = 20000
local n, warm_kb = 0, 0
return {
	on_packet = function (pkt)
		n = n + 1
		if n == WARM then
			collectgarbage()
			collectgarbage("stop")
			warm_kb = collectgarbage("count")
		end
		local udp = pkt:udp()
		if udp and udp:dst_port() == 53 then return divert.DROP end
		if n % 2 == 0 then pkt:hold(0.25) end
		return divert.PASS
	end,
	on_stop = function ()
		io.stderr:write(string.format("heap growth %d bytes over %d packets\n",
			(collectgarbage("count") - warm_kb) * 1024, n - WARM))
	end,
}
EOF
# says "changed" for every packet (bytes untouched); cut ones whose
# lengths look right get a mark, visible in the verdicts file
cat >snap.lua <<'EOF'
local divert = require "divert"
return function (pkt)
	pkt:modified()
	if pkt:truncated() and pkt:len() == 66 and pkt:orig_len() == 128 then pkt:set_mark(1) end
	return divert.PASS
end
EOF

# ---------------------------------------------------------------- runs
# run NAME POLICY IN [options]: replay into NAME.pcap, summary in NAME.err
run() {
	_n=$1; _p=$2; _i=$3; shift 3
	"$LUADIVERT" replay "$_p" "$_i" -w "$_n.pcap" "$@" 2>"$_n.err" && return 0
	sed 's/^/  /' "$_n.err" >&2
	return 1
}
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in $1:" >&2; sed 's/^/  /' "$1" >&2; return 1; }; }
line() { sed -n "$(($2 + 1))p" "$1"; }   # verdicts file line of record N

run first pass.lua mix.pcap || fail "cannot replay at all"
check "pass-all: output equals the input" python3 rp.py same mix.pcap first.pcap
check "pass-all: summary counts 35 IP and 5 not IP" has first.err "40 records (35 IP, 5 not IP)"

check "drop: replays" run drop drop.lua mix.pcap
check "drop: port 53 records missing, the rest unchanged" python3 chk.py drop drop.pcap
check "drop: summary" has drop.err "pass 30, drop 5"

check "rewrite: replays" run rewrite rewrite.lua mix.pcap
check "rewrite: expected bytes, link headers and tags kept" python3 chk.py rewrite rewrite.pcap
check "rewrite: 30 modified" has rewrite.err "modified 30"

check "hold 50 ms: replays" run delay delay.lua mix.pcap --verdicts delay.v
check "hold 50 ms: every IP record exactly 50 ms later, in release order" \
	python3 chk.py delay delay.pcap
check "hold 50 ms: nanosecond capture" run delayns delay.lua mixns.pcap
check "hold 50 ms: nanosecond timestamps exactly +50000000 ns" python3 chk.py delayns delayns.pcap
check "hold 50 ms: verdicts file shows the hold" [ "$(line delay.v 1)" = "1 PASS 0x0 48 48 50000000 0" ]
check "hold 50 ms, one packet per batch: same output" run delay1 delay.lua mix.pcap --batch 1
check "hold 50 ms, one packet per batch: same output" cmp -s delay.pcap delay1.pcap

check "token bucket: replays" run bucket bucket.lua burst.pcap
check "token bucket: packets spaced to 1 Mbit/s" python3 chk.py rate bucket.pcap
check "shape.pipe rate: replays" run pipe pipe.lua burst.pcap
check "shape.pipe rate: packets spaced to 1 Mbit/s" python3 chk.py rate pipe.pcap

check "seed 7: replays" run seed7a random.lua mix.pcap --seed 7
check "seed 7 again, batch 5: replays" run seed7b random.lua mix.pcap --seed 7 --batch 5
check "same seed: identical output files" cmp -s seed7a.pcap seed7b.pcap
check "seed 8: replays" run seed8 random.lua mix.pcap --seed 8
check "other seed: other decisions" python3 chk.py ndiff seed7a.pcap seed8.pcap

check "handler errors, --default-verdict drop: replays" \
	run fails fails.lua mix.pcap --default-verdict drop --verdicts fails.v
check "handler errors, --default-verdict drop: those packets missing" python3 chk.py drop fails.pcap
check "handler errors: counted" has fails.err "errors 5"
check "handler errors: verdicts file" [ "$(line fails.v 1)" = "1 DROP 0x0 48 48 0 0" ]
check "handler errors, default pass: replays" run failp fails.lua mix.pcap
check "handler errors, default pass: output equals the input" python3 rp.py same mix.pcap failp.pcap

check "queue and repeat: replays" run queue queue.lua mix.pcap --verdicts queue.v
check "queue and repeat: written like pass" python3 rp.py same mix.pcap queue.pcap
check "queue and repeat: counted" has queue.err "pass 5, drop 0, queue 25, repeat 5"
check "queue and repeat: verdicts file" [ "$(line queue.v 2) $(line queue.v 8)" = \
	"2 QUEUE:3 0x0 58 58 0 0 8 REPEAT 0x0 128 128 0 0" ]

# 35 IP packets held 50 ms within 40 ms, room for 10: the first 10 are held
check "hold table full: replays" run full delay.lua mix.pcap --max-held 10 --verdicts full.v
check "hold table full: newest 25 dropped and counted" has full.err "25 dropped (hold table full)"
check "hold table full: OVERFLOW in the verdicts file" [ "$(grep -c OVERFLOW full.v)" = 25 ]
check "hold table full: 10 held + 5 not IP written" [ "$(python3 rp.py dump full.pcap | wc -l)" = 15 ]

check "dup+mark: replays" run dup dupmark.lua mix.pcap --verdicts dup.v
check "dup+mark: marked packets twice, port 53 dropped" python3 chk.py dup dup.pcap
check "dup+mark: summary counts the copies" has dup.err "duplicates 5"
check "verdicts: a line per record plus the header" [ "$(wc -l <dup.v)" = 41 ]
check "verdicts: drop line" [ "$(line dup.v 1)" = "1 DROP 0x0 48 48 0 0" ]
check "verdicts: mark and dup" [ "$(line dup.v 2)" = "2 PASS 0x7 58 58 0 1" ]
check "verdicts: not IP" [ "$(line dup.v 7)" = "7 NONIP - 60 60 0 0" ]
check "verdicts: padding not shown to the policy" [ "$(line dup.v 6)" = "6 PASS 0x0 32 32 0 0" ]

check "no allocation per packet: replays" run alloc alloc.lua long.pcap
# (a few KB once, for late traces, is fine: 16 bytes a packet would be 1.3 MB)
growth=$(sed -n 's/^heap growth \(-\{0,1\}[0-9]*\) bytes.*/\1/p' alloc.err)
check "no allocation per packet: Lua heap flat over 85000 packets (grew ${growth:-?} bytes)" \
	[ "${growth:-999999}" -lt 65536 ]

check "snap-truncated: replays" run snapout snap.lua snap.pcap --verdicts snap.v
check "snap-truncated: the policy saw len 66 of 128" [ "$(line snap.v 2)" = "2 PASS 0x1 66 66 0 0" ]
check "snap-truncated: whole packets changed" has snapout.err "modified 2"
check "snap-truncated: changes to cut packets refused" has snapout.err "2 changes not used"
check "snap-truncated: output equals the input" python3 rp.py same snap.pcap snapout.pcap
ldt_done

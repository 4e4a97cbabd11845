#!/bin/sh
# divert.inject() from a Lua policy (tests/policies/inject_new.lua):
#  - live: for each diverted datagram the policy drops, a reply it built
#    reaches the sender (direction "out") and a copy reaches a local port
#    (direction "in"); none of them is diverted again (skip mark);
#  - replay: each injected packet is in the output, right after the packet
#    that made it, at its virtual time (the capture's timestamp), with the
#    bytes the policy built.
LDT_AREA=divert-inject-lua
. "$(dirname "$0")/../lib/netns.sh"
require_root
require_tools udpsend udprecv
require_cmd luajit
ldt_tmpdir; T=$LDT_TMP
N=100
jnum() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }

# --- live
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
INJECT_MODE=live bg_ns "$B" "$LUADIVERT" run "$LDT_ROOT/tests/policies/inject_new.lua" \
	--queue 3 --hook input --filter 'udp dst port 9040' --family 4 \
	--pidfile "$T/ld.pid" >"$T/ld.out" 2>&1
LD=$LDT_LAST_PID
wait_for_output "$T/ld.out" 'diverting' 10 || { cat "$T/ld.out" >&2; fail "luadivert did not start"; }
bg_ns "$A" "$LDT_TOOLS/udprecv" --port 9041 --count $N --idle-ms 1500 --time-limit 5 >"$T/r41"
P41=$LDT_LAST_PID
bg_ns "$B" "$LDT_TOOLS/udprecv" --port 9042 --count $N --idle-ms 1500 --time-limit 5 >"$T/r42"
P42=$LDT_LAST_PID
bg_ns "$B" "$LDT_TOOLS/udprecv" --port 9040 --count $N --idle-ms 1500 --time-limit 2 >"$T/r40"
P40=$LDT_LAST_PID
wait_for_port "$A" udp 9041 && wait_for_port "$B" udp 9042 && wait_for_port "$B" udp 9040 ||
	fail "receivers"
ns_exec "$A" "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port 9040 --count $N --rate 2000 \
	--size 32 --src-port 9040 >/dev/null
wait_for_exit "$P41" 6; wait_for_exit "$P42" 6; wait_for_exit "$P40" 3
check "live: the originals were dropped" [ "$(jnum "$T/r40" received)" = 0 ]
check "live: replies built by the policy reach the sender (out) ($(jnum "$T/r41" received)/$N)" \
	[ "$(jnum "$T/r41" received)" = $N ]
check "live: copies reach the local port (in) ($(jnum "$T/r42" received)/$N)" \
	[ "$(jnum "$T/r42" received)" = $N ]
bg_stop "$LD" TERM 10
check "live: counted as injected, not diverted again" \
	sh -c "grep -q 'inject failures 0' '$T/ld.out' && grep -Eq 'injected $((2 * N))\\b' '$T/ld.out'"

# --- replay: every UDP packet of a capture, then its TTL-7 copy
PCAP="$(cd "$LDT_ROOT/.." && pwd)/shared/pcaps/dns_udp.pcap"
[ -r "$PCAP" ] || fail "no $PCAP"
"$LUADIVERT" replay "$LDT_ROOT/tests/policies/inject_new.lua" "$PCAP" -w "$T/out.pcap" \
	>"$T/replay.out" 2>&1 || { cat "$T/replay.out" >&2; fail "replay"; }
# records FILE: "ts_sec.ts_frac ttl proto" per Ethernet/IPv4 record of a pcap
cat >"$T/records.lua" <<'EOF'
local f = assert(io.open(arg[1], "rb")); local d = f:read("*a"); f:close()
local le = d:byte(1) == 0xd4 or d:byte(1) == 0x4d
local function u32(i)
	local a, b, c, e = d:byte(i, i + 3)
	if le then return ((e * 256 + c) * 256 + b) * 256 + a end
	return ((a * 256 + b) * 256 + c) * 256 + e
end
local pos = 25
while pos + 16 <= #d do
	local ip = pos + 16 + 14      -- Ethernet
	print(u32(pos) .. "." .. u32(pos + 4), d:byte(ip + 8), d:byte(ip + 9))
	pos = pos + 16 + u32(pos + 8)
end
EOF
records() { luajit "$T/records.lua" "$1"; }
records "$PCAP" >"$T/in.txt"
records "$T/out.pcap" >"$T/out.txt"
NUDP=$(awk '$3 == 17' "$T/in.txt" | wc -l)
check "replay: $NUDP UDP packets in the capture" [ "$NUDP" -gt 0 ]
check "replay: one injected packet per UDP packet, counted" \
	grep -q "injected: $NUDP new packets" "$T/replay.out"
check "replay: the output holds them (ttl 7)" [ "$(awk '$2 == 7' "$T/out.txt" | wc -l)" = "$NUDP" ]
# each ttl-7 record directly follows its original, with the same timestamp
check "replay: each right after its packet, at its virtual time" \
	sh -c "awk '{ if (\$2 == 7 && (\$1 != prev || prevttl == 7)) bad++; prev = \$1; prevttl = \$2 } END { exit bad > 0 }' '$T/out.txt'"
ldt_done

#!/bin/sh
# test_replay_pcaps.sh - every real capture in ../shared/pcaps replays through
# a pass-all policy, and through a policy that parses every header it can, to
# an output whose records equal the input's: same timestamps, lengths and
# bytes (pcapng inputs are written as pcap; the records are what is compared).
# The malformed captures among them (bad lengths, header loops, truncated
# headers) must not upset the replay. No root needed.
LDT_AREA=replay-pcaps
. "$(dirname "$0")/../lib/netns.sh"
require_cmd python3
[ -x "$LUADIVERT" ] || skip "no $LUADIVERT (run make)"
PCAPS="$(cd "$(dirname "$0")/../../.." && pwd)/shared/pcaps"
[ -d "$PCAPS" ] || skip "no real captures in $PCAPS"
ldt_tmpdir; T=$LDT_TMP
PY="$LDT_ROOT/tests/integration/replay_pcap.py"

cp "$LDT_ROOT/scripts/examples/pass_all.lua" "$T/pass.lua" || fail "no pass_all.lua"
# Reads every layer it finds (nothing is written, so nothing is modified).
cat >"$T/parse.lua" <<'EOF'
local divert = require "divert"
local seen = 0
return function (pkt)
	local ip = pkt:ip()
	if ip then
		local l4 = pkt:tcp() or pkt:udp() or pkt:icmp() or pkt:icmpv6()
		if l4 then seen = seen + 1 end
	end
	return divert.PASS
end
EOF

# replay POLICY IN OUT: quiet unless it fails
replay() {
	"$LUADIVERT" replay "$1" "$2" -w "$3" 2>"$T/err" && grep -q ", errors 0$" "$T/err" &&
		return 0
	sed 's/^/  /' "$T/err" >&2
	return 1
}

# one run first: when the binary or the library is broken, say it once
first=$(ls "$PCAPS"/*.pcap | head -n 1)
replay "$T/pass.lua" "$first" "$T/first.pcap" || fail "cannot replay $first"

n=0
for f in "$PCAPS"/*.pcap "$PCAPS"/*.pcapng; do
	[ -f "$f" ] || continue
	b=$(basename "$f")
	n=$((n + 1))
	for pol in pass parse; do
		out="$T/$b.$pol.pcap"
		check "$b: $pol policy replays (exit 0, no handler error)" replay "$T/$pol.lua" "$f" "$out"
		check "$b: $pol policy output equals the input" python3 "$PY" same "$f" "$out"
	done
	if command -v tcpdump >/dev/null 2>&1; then
		tcpdump -nn -tt --time-stamp-precision=nano -xx -r "$f" >"$T/a.txt" 2>/dev/null
		tcpdump -nn -tt --time-stamp-precision=nano -xx -r "$T/$b.pass.pcap" >"$T/b.txt" 2>/dev/null
		check "$b: tcpdump prints the same" cmp -s "$T/a.txt" "$T/b.txt"
	fi
done
[ "$n" -gt 0 ] || skip "no capture in $PCAPS"

# nanosecond input -> nanosecond output; microsecond input -> microsecond output
magic() { od -A n -t x1 -N 4 "$1" | tr -d ' '; }
if [ -f "$PCAPS/tcp-handshake-nano.pcap" ]; then
	check "nanosecond capture written with nanoseconds" \
		[ "$(magic "$T/tcp-handshake-nano.pcap.pass.pcap")" = 4d3cb2a1 ]
fi
if [ -f "$PCAPS/dns_udp.pcap" ]; then
	check "microsecond capture written with microseconds" \
		[ "$(magic "$T/dns_udp.pcap.pass.pcap")" = d4c3b2a1 ]
fi
ldt_done

#!/bin/sh
# bench/replay_bench.sh - `luadivert replay` throughput, in packets per second.
#
#   sh bench/replay_bench.sh [PACKETS]      (default 2000000; no root needed)
#
# Makes a synthetic Ethernet capture (IPv4/UDP and IPv6/UDP, 64..200-byte
# frames, 256 flows, 1 us apart), then replays it on one core through:
#   pass-all        scripts/examples/pass_all.lua: return divert.PASS
#   parse-match     scripts/examples/drop_dns.lua: pkt:udp(), compare the
#                   destination port, drop port 53
#   hold            pkt:hold(1) on every packet (timer heap + hold store)
# and prints the best of 3 runs of each. The goal (issue 7) is >= 1M packets/s
# for pass-all. Reports; asserts nothing.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LUADIVERT=${LUADIVERT:-$ROOT/luadivert}
N=${1:-2000000}
RUNS=${RUNS:-3}
[ -x "$LUADIVERT" ] || { echo "replay_bench: no $LUADIVERT (run make)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "replay_bench: needs python3" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/ld-replay-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

python3 - "$ROOT/tests/integration/replay_pcap.py" "$T/in.pcap" "$N" <<'EOF'
import importlib.util, struct, sys
spec = importlib.util.spec_from_file_location("rp", sys.argv[1])
rp = importlib.util.module_from_spec(spec); spec.loader.exec_module(rp)
path, n = sys.argv[2], int(sys.argv[3])
S4, D4, S6, D6 = rp.SRC4, rp.DST4, rp.SRC6, rp.DST6
frames = []
for f in range(256):
    size = 18 + (f * 37) % 130          # UDP payload 18..147 bytes
    port = 53 if f % 16 == 0 else 5000 + f
    if f % 4 == 3:
        ip = rp.ipv6_udp(S6, D6, 10000 + f, port, b"x" * size)
        frames.append(rp.ether(ip, 0x86dd))
    else:
        ip = rp.ipv4_udp(S4, D4, 10000 + f, port, b"x" * size)
        frames.append(rp.ether(ip, 0x0800))
with open(path, "wb") as out:
    out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    base, chunk = 1700000000, []
    for i in range(n):
        fr = frames[i % 256]
        chunk.append(struct.pack("<IIII", base + i // 1000000, i % 1000000, len(fr), len(fr)))
        chunk.append(fr)
        if len(chunk) >= 65536:
            out.write(b"".join(chunk)); chunk = []
    out.write(b"".join(chunk))
EOF

cp "$ROOT/scripts/examples/pass_all.lua" "$T/pass.lua"
cp "$ROOT/scripts/examples/drop_dns.lua" "$T/match.lua"
cat >"$T/hold.lua" <<'EOF'
local divert = require "divert"
return function (pkt) pkt:hold(1) return divert.PASS end
EOF

echo "replay_bench: $N packets, $(( $(wc -c <"$T/in.pcap") / 1048576 )) MiB capture, $LUADIVERT"
for pol in pass match hold; do
	best=0
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		i=$((i + 1))
		"$LUADIVERT" replay "$T/$pol.lua" "$T/in.pcap" -w "$T/out.pcap" 2>"$T/err" || {
			cat "$T/err" >&2; exit 1; }
		# "replay: N records (...) in S s, R records/s"
		r=$(sed -n 's/^replay: .* \([0-9][0-9]*\) records\/s$/\1/p' "$T/err")
		[ "${r:-0}" -gt "$best" ] && best=$r
	done
	case $pol in
	pass) name="pass-all" ;;
	match) name="parse-match" ;;
	*) name="hold 1 ms" ;;
	esac
	printf 'replay %-12s %10d packets/s (best of %d)\n' "$name" "$best" "$RUNS"
done

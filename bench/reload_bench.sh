#!/bin/sh
# bench/reload_bench.sh - how long a reload takes under traffic (issue 5).
#
# For a small policy and for one with 10,000 rules (a prefix set built at
# load time plus 10,000 port rules in a table), while UDP flows at 5,000
# packets/s through the queue: the time from SIGHUP to the first packet
# handled by the new version, the load time luadivert logs, and the worst
# one-way latency of the packets in flight, next to the worst without a
# reload. Goal: under 50 ms for the large policy, no packet delayed more.
# Root; in a namespace it creates and removes.
LDT_AREA=bench-reload
. "$(dirname "$0")/../tests/lib/netns.sh"
require_root
require_tools udpsend udprecv
require_cmd python3
ldt_tmpdir
T=$LDT_TMP
ns_create a; NS=$LDT_NS
iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0

# policy NAME RULES VERSION: write a policy with RULES rules that records,
# in $T/first.VERSION, the CLOCK_MONOTONIC time of the first packet it handles.
policy() {
	cat >"$T/$1" <<LUA
local divert = require "divert"
local ffi = require "ffi"
local prefixset = require "divert.prefixset"
pcall(ffi.cdef, [[ struct ld_ts { long tv_sec; long tv_nsec; };
                   int clock_gettime(int clk, struct ld_ts *ts); ]])
local ts = ffi.new("struct ld_ts")
local deny = prefixset.new()
local ports = {}
for i = 1, $2 do
  deny:add(string.format("10.%d.%d.0/24", math.floor(i / 256) % 256, i % 256))
  ports[20000 + i] = true
end
local first = false
return {
  on_packet = function (pkt)
    if not first then
      first = true
      ffi.C.clock_gettime(1, ts)
      local f = io.open("$T/first.$3", "w")
      f:write(string.format("%d\n", tonumber(ts.tv_sec) * 1000000000 + tonumber(ts.tv_nsec)))
      f:close()
    end
    local ip, udp = pkt:ip(), pkt:udp()
    if ip and deny:match_dst(ip) then return divert.DROP end
    if udp and ports[udp:dst_port()] then return divert.DROP end
    return divert.PASS
  end,
}
LUA
}

measure() {
	label=$1 rules=$2
	policy p.lua "$rules" 1
	bg_ns "$NS" "$LUADIVERT" run "$T/p.lua" --queue 0 --no-rules --pidfile "$T/pid" >"$T/ld.log" 2>&1
	LD=$LDT_LAST_PID
	wait_for_queue "$NS" 0 30 || fail "luadivert did not start"
	# baseline: no reload
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9000 --count 10000 --idle-ms 1000 --time-limit 20 \
		--ready "$T/r0" >"$T/base.json"
	R=$LDT_LAST_PID; wait_until 5 test -e "$T/r0"
	ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 10000 --rate 5000 \
		--time-limit 10 >/dev/null
	wait "$R"
	# with a reload one second into the stream
	policy p.new "$rules" 2
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9000 --count 10000 --idle-ms 1000 --time-limit 20 \
		--ready "$T/r1" >"$T/reload.json"
	R=$LDT_LAST_PID; wait_until 5 test -e "$T/r1"
	ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 10000 --rate 5000 \
		--time-limit 10 >/dev/null &
	S=$!
	sleep 1
	mv "$T/p.new" "$T/p.lua"
	HUP=$(python3 -c 'import os, signal, sys, time
t = time.clock_gettime_ns(time.CLOCK_MONOTONIC); os.kill(int(sys.argv[1]), signal.SIGHUP); print(t)' "$LD")
	wait "$S"; wait "$R"
	kill -TERM "$LD"; wait "$LD"
	FIRST=$(cat "$T/first.2" 2>/dev/null || echo 0)
	LOAD=$(sed -n 's/.*reloaded .* in \([0-9.]*\) ms.*/\1/p' "$T/ld.log")
	BASE=$(sed -n 's/.*"lat_us_max":\([0-9.]*\).*/\1/p' "$T/base.json")
	MAX=$(sed -n 's/.*"lat_us_max":\([0-9.]*\).*/\1/p' "$T/reload.json")
	GOT=$(sed -n 's/.*"unique":\([0-9]*\).*/\1/p' "$T/reload.json")
	python3 - "$label" "$HUP" "$FIRST" "$LOAD" "$BASE" "$MAX" "$GOT" <<'PY'
import sys
label, hup, first, load, base, mx, got = sys.argv[1:]
switch_ms = (int(first) - int(hup)) / 1e6 if int(first) else float("nan")
print(f"| {label} | {switch_ms:.2f} | {float(load or 'nan'):.2f} | {float(base)/1000:.2f} | {float(mx)/1000:.2f} | {got}/10000 |"
      f" {'PASS' if switch_ms < 50 and float(mx)/1000 < 50 else 'FAIL'} |")
PY
	rm -f "$T"/first.* "$T"/r0 "$T"/r1
}

echo "| policy | SIGHUP to new version (ms) | load (ms) | worst latency, no reload (ms) | worst latency, reload (ms) | arrived | goal < 50 ms |"
echo "|---|---|---|---|---|---|---|"
measure "small (1 rule)" 1
measure "large (10,000 rules)" 10000

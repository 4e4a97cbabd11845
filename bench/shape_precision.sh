#!/bin/sh
# bench/shape_precision.sh - how exact divert.shape is on real traffic,
# next to the kernel's own tbf shaper measured in the same run (issue 4).
#
#  1. Delay: UDP datagrams A -> B over a veth at 1k and 10k packets/s,
#     through luadivert with a pass-all policy (the baseline path) and with
#     `delay = 10`, at the sender's output hook: held packets are taken over
#     (copied, the original dropped, the copy sent at release through a raw
#     socket; docs/shaping.md). The receiver's input is not measured here:
#     the receiving kernel stamps a datagram before the input hook holds it. One-way delay = the receiving kernel's timestamp minus
#     the sender's CLOCK_MONOTONIC stamp; the error is the shaped percentile
#     minus 10 ms minus the baseline median. (No netem qdisc on this kernel:
#     no kernel column for delay.)
#  2. Rate: UDP at 125% of the target (1000-byte datagrams, 1028-byte IP
#     packets) through `rate = R, limit = 100` and, without luadivert,
#     through `tc qdisc ... tbf rate R` on the sending veth; the achieved IP
#     rate is measured at the receiver between the 20th percentile and the
#     last arrival (the queue filling at the start is left out).
# Goals (issue 4): delay error p99 <= 100 us at 10k packets/s; achieved rate
# within +-2% of the target.
#
# Root; everything happens in namespaces this script creates and deletes.
# Knobs: SHP_DELAY_S=5 SHP_RATE_S=4 SHP_PIN=0|1 SHP_SLACK=ns LUADIVERT=./luadivert
# Prints a table and writes build/bench/shape_precision.md.
LDT_AREA=bench-shape
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
. "$LDT_ROOT/tests/lib/engine.sh"
. "$LDT_ROOT/tests/lib/shape.sh"
require_root
require_tools udpsend owdrecv
require_cmd python3 tc
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"
ldt_tmpdir
DELAY_S=${SHP_DELAY_S:-5}
RATE_S=${SHP_RATE_S:-4}
OUT=build/bench/shape_precision.md
mkdir -p build/bench

# SHP_PIN=1: luadivert alone on CPU 1 under SCHED_FIFO (no timer slack, no
# preemption by the traffic tools), sender and receiver on CPU 0.
if [ "${SHP_PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
	require_cmd taskset chrt
	printf '#!/bin/sh\nexec taskset -c 1 chrt -f 50 %s "$@"\n' "$LUADIVERT" >"$LDT_TMP/luadivert-pinned"
	chmod +x "$LDT_TMP/luadivert-pinned"
	LUADIVERT=$LDT_TMP/luadivert-pinned
	PIN0="taskset -c 0"
else
	PIN0=""
fi

ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
# A's veth: no offloads, so tbf sees the packets the receiver gets
ns_exec "$A" ethtool -K "$VETH_A" tso off gso off gro off >/dev/null 2>&1 || true

cat >"$LDT_TMP/pass.lua" <<'LUA'
return function () return 1 end
LUA
shape_policy "$LDT_TMP/delay.lua" "delay = 10, seed = 1"

# ------------------------------------------------------------------ delay
# As the rules luadivert installs: our own copies (skip mark) are not queued again.
SKIP=0x4c440000
iptables_ns "$A" -A OUTPUT -p udp --dport 9700 -m mark ! --mark $SKIP/$SKIP -j NFQUEUE --queue-num 0
# One-way delays with the receiving kernel's timestamp (build/tools/owdrecv:
# SO_TIMESTAMPNS, when the datagram reached the socket), so the receiver's
# own wake-up latency is not counted.
one_way() {  # one_way POLICY PPS OUT
	ld_start "$A" "$LDT_TMP/$1.lua" --queue 0 --hold-max 8192
	# SHP_SLACK=N: the daemon's timer slack in ns (default 50000 for normal
	# threads: a timerfd may fire up to 50 us late)
	if [ -n "${SHP_SLACK:-}" ]; then
		echo "$SHP_SLACK" >/proc/"$LD_PID"/timerslack_ns 2>/dev/null || log "cannot set the timer slack"
	fi
	rm -f "$3.ready"
	bg_ns "$B" $PIN0 "$LDT_TOOLS/owdrecv" --port 9700 --count $(($2 * DELAY_S)) --idle-ms 1000 \
		--time-limit $((DELAY_S + 20)) --ready "$3.ready" >"$3"
	_rp=$LDT_LAST_PID
	wait_for_file "$3.ready" 5 || fail "receiver did not start"
	ns_exec "$A" $PIN0 "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port 9700 --count $(($2 * DELAY_S)) \
		--rate "$2" --size 64 --time-limit $((DELAY_S + 10)) >/dev/null || fail "udpsend"
	wait "$_rp"
	ld_stop
}
DELAY_ROWS=""
for pps in 1000 10000; do
	one_way pass $pps "$LDT_TMP/base$pps.json"
	one_way delay $pps "$LDT_TMP/d$pps.json"
	row=$(awk -v b50="$(json_get "$LDT_TMP/base$pps.json" p50)" \
		-v b99="$(json_get "$LDT_TMP/base$pps.json" p99)" \
		-v p50="$(json_get "$LDT_TMP/d$pps.json" p50)" \
		-v p99="$(json_get "$LDT_TMP/d$pps.json" p99)" \
		-v p999="$(json_get "$LDT_TMP/d$pps.json" p999)" \
		-v mx="$(json_get "$LDT_TMP/d$pps.json" max)" \
		-v got="$(json_get "$LDT_TMP/d$pps.json" received)" -v n=$((pps * DELAY_S)) -v pps=$pps \
		'BEGIN { printf "| %d | %d/%d | %.1f / %.1f | %.1f | %.1f | %.1f | %.1f |", pps, got, n, b50, b99,
			p50 - 10000 - b50, p99 - 10000 - b50, p999 - 10000 - b50, mx - 10000 - b50 }')
	DELAY_ROWS="$DELAY_ROWS$row
"
	log "delay 10 ms at $pps/s: $row"
done
iptables_ns "$A" -F OUTPUT

# ------------------------------------------------------------------ rate
cat >"$LDT_TMP/rrecv.py" <<'PY'
# Receive until idle; print the IP rate between the 20th percentile arrival
# and the last one: {"packets":N,"mbps":R}
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
with open(sys.argv[2], "w") as f:
    f.write("ready\n")
s.settimeout(1.0)
ts, sz = [], []
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        d = s.recv(65535)
    except socket.timeout:
        if ts:
            break
        continue
    ts.append(time.monotonic_ns())
    sz.append(len(d) + 28)          # UDP payload + UDP and IPv4 headers
n = len(ts)
if n < 10:
    print('{"packets":%d,"mbps":0}' % n)
else:
    i = n // 5
    bits = sum(sz[i + 1:]) * 8      # what arrived after the i-th packet
    print('{"packets":%d,"mbps":%.4f}' % (n, bits / ((ts[-1] - ts[i]) / 1e9) / 1e6))
PY
rate_run() {  # rate_run MBIT OUT: send at 125% of MBIT for RATE_S seconds
	rm -f "$2.ready"
	bg_ns "$B" $PIN0 python3 "$LDT_TMP/rrecv.py" 9701 "$2.ready" $((RATE_S + 20)) >"$2"
	_rp=$LDT_LAST_PID
	wait_for_file "$2.ready" 5 || fail "receiver did not start"
	_pps=$(awk -v r="$1" 'BEGIN { printf "%d", r * 1e6 * 1.25 / (1028 * 8) }')
	ns_exec "$A" $PIN0 "$LDT_TOOLS/udpsend" --dst "$ADDR_B" --port 9701 --count $((_pps * RATE_S)) \
		--rate "$_pps" --size 1000 --time-limit $((RATE_S + 10)) >/dev/null || fail "udpsend"
	wait "$_rp"
}
RATE_ROWS=""
for mbit in 1 10 100; do
	shape_policy "$LDT_TMP/rate$mbit.lua" "rate = \"${mbit}mbit\", limit = 100, seed = 1"
	iptables_ns "$A" -A OUTPUT -p udp --dport 9701 -m mark ! --mark $SKIP/$SKIP -j NFQUEUE --queue-num 0
	ld_start "$A" "$LDT_TMP/rate$mbit.lua" --queue 0
	rate_run $mbit "$LDT_TMP/ld$mbit.json"
	ld_stop
	iptables_ns "$A" -F OUTPUT
	# tbf: burst of at least one MTU and rate/HZ; a 100-packet queue.
	burst=$(awk -v r=$mbit 'BEGIN { b = r * 1e6 / 8 / 250; if (b < 3200) b = 3200; printf "%d", b }')
	ns_exec "$A" tc qdisc add dev "$VETH_A" root tbf rate "${mbit}mbit" burst "$burst" \
		limit $((100 * 1100)) || fail "tc tbf"
	rate_run $mbit "$LDT_TMP/tbf$mbit.json"
	ns_exec "$A" tc qdisc del dev "$VETH_A" root
	row=$(awk -v r=$mbit -v l="$(json_get "$LDT_TMP/ld$mbit.json" mbps)" \
		-v t="$(json_get "$LDT_TMP/tbf$mbit.json" mbps)" \
		'BEGIN { printf "| %d | %.4f | %+.2f%% | %.4f | %+.2f%% |", r, l, (l - r) / r * 100, t, (t - r) / r * 100 }')
	RATE_ROWS="$RATE_ROWS$row
"
	log "rate $mbit Mbit/s: $row"
done

{
	echo "# divert.shape precision ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, SHP_PIN=${SHP_PIN:-0}, SHP_SLACK=${SHP_SLACK:-default})"
	echo
	echo "Delay 10 ms at the sender's output (held packets taken over and sent at release),"
	echo "64-byte UDP over a veth; one-way delays in us (receiving kernel's"
	echo "timestamp - sender's stamp); error = shaped"
	echo "percentile - 10 ms - baseline median (baseline: the same path through luadivert"
	echo "pass-all). Goal: p99 error <= 100 us at 10k packets/s."
	echo
	echo "| packets/s | arrived | baseline p50 / p99 | error p50 | error p99 | error p99.9 | error max |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	printf '%s' "$DELAY_ROWS"
	echo
	echo "Rate: UDP offered at 125% of the target, 1028-byte IP packets; achieved IP rate"
	echo "at the receiver in Mbit/s. Goal: within +-2%."
	echo
	echo "| target Mbit/s | luadivert | error | tbf | error |"
	echo "| --- | --- | --- | --- | --- |"
	printf '%s' "$RATE_ROWS"
} >"$OUT"
cat "$OUT"

#!/bin/sh
# test_tools.sh - the traffic tools in build/tools work over a veth pair
# between two namespaces (no NFQUEUE involved): udpsend/udprecv over IPv4
# and IPv6, rate limiting, payload fill and dumps, tcpxfer hashes, udpping.
LDT_AREA=tools
. "$(dirname "$0")/../lib/netns.sh"
require_root
require_cmd ss
require_tools udpsend udprecv tcpxfer udpping

ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 7
ldt_tmpdir; T=$LDT_TMP
U="$LDT_TOOLS"

# field FILE NAME: the number after "NAME": in a tool's JSON line
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([0-9a-f.]*\).*/\1/p" "$1" | head -n1; }
eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }' || { echo "  $1 < $2" >&2; return 1; }; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }' || { echo "  $1 > $2" >&2; return 1; }; }

# --- IPv4, as fast as possible, 10000 datagrams
bg_ns "$B" "$U/udprecv" --port 9000 --count 10000 --idle-ms 1000 --time-limit 10 \
	--ready "$T/r1" --dump-first "$T/first.hex" --seqs "$T/seqs" >"$T/recv1" 2>&1
R=$LDT_LAST_PID
wait_for_file "$T/r1" 5 || fail "udprecv did not start"
ns_exec "$A" "$U/udpsend" --dst "$ADDR_B" --port 9000 --count 10000 --size 64 \
	--rate 0 --payload-byte 0xab --time-limit 10 >"$T/send1" || fail "udpsend failed"
wait_for_exit "$R" 15 || fail "udprecv did not finish"
cat "$T/send1" "$T/recv1"
check "udpsend reports 10000 sent" eq "$(field "$T/send1" sent)" 10000
# a veth may drop a few when the receiver falls behind: allow 1%
check "udprecv got >= 99% of them" ge "$(field "$T/recv1" unique)" 9900
check "no duplicates" eq "$(field "$T/recv1" duplicates)" 0
check "no reordering on one veth" eq "$(field "$T/recv1" out_of_order)" 0
check "missing + unique = 10000" eq \
	$(( $(field "$T/recv1" missing) + $(field "$T/recv1" unique) )) 10000
check "one-way latency reported" ge "$(field "$T/recv1" lat_us_max)" 0.1
check "first payload is seq 0 then 0xab filler" \
	grep -q '^0000000000000000[0-9a-f]\{16\}\(ab\)\{48\}$' "$T/first.hex"
check "--seqs lists every datagram" eq "$(wc -l <"$T/seqs" | tr -d ' ')" "$(field "$T/recv1" received)"

# --- IPv6 at a fixed rate: 500 datagrams at 2000/s take about 0.25 s
bg_ns "$B" "$U/udprecv" --port 9001 --count 500 --idle-ms 1000 --time-limit 10 \
	--ready "$T/r2" >"$T/recv2" 2>&1
R=$LDT_LAST_PID
wait_for_file "$T/r2" 5 || fail "udprecv (v6) did not start"
ns_exec "$A" "$U/udpsend" --dst "$ADDR6_B" --port 9001 --count 500 --rate 2000 \
	--size 100 --time-limit 10 >"$T/send2" || fail "udpsend v6 failed"
wait_for_exit "$R" 15 || fail "udprecv v6 did not finish"
cat "$T/send2" "$T/recv2"
check "IPv6: all 500 arrive" eq "$(field "$T/recv2" unique)" 500
check "IPv6: 500 x 100 bytes" eq "$(field "$T/recv2" bytes)" 50000
check "rate limit: took >= 0.2 s" ge "$(field "$T/send2" elapsed_s)" 0.2
check "rate limit: took <= 1.5 s" le "$(field "$T/send2" elapsed_s)" 1.5

# --- the time limit bounds the sender even with a huge count
ns_exec "$A" "$U/udpsend" --dst "$ADDR_B" --port 9009 --count 100000000 --rate 1000 \
	--time-limit 0.3 >"$T/send3" || fail "udpsend (time limit) failed"
check "--time-limit stops udpsend" le "$(field "$T/send3" elapsed_s)" 1

# --- tcpxfer: 8 MB, IPv4 and IPv6, hashes agree; another seed differs
# xfer DST PORT SEED: one transfer A -> B; leaves $T/tsend and $T/trecv
xfer() {
	rm -f "$T/rt"
	bg_ns "$B" "$U/tcpxfer" recv --port "$2" --ready "$T/rt" --time-limit 20 >"$T/trecv" 2>&1
	_r=$LDT_LAST_PID
	wait_for_file "$T/rt" 5 || fail "tcpxfer recv did not start"
	ns_exec "$A" "$U/tcpxfer" send --dst "$1" --port "$2" --bytes 8000000 --seed "$3" \
		--time-limit 20 >"$T/tsend" || fail "tcpxfer send failed"
	wait_for_exit "$_r" 20 || fail "tcpxfer recv did not finish"
	cat "$T/tsend" "$T/trecv"
}
for dst in "$ADDR_B" "$ADDR6_B"; do
	xfer "$dst" 9100 42
	check "tcpxfer $dst: 8000000 bytes arrive" eq "$(field "$T/trecv" received)" 8000000
	check "tcpxfer $dst: hashes agree" eq "$(field "$T/trecv" hash)" "$(field "$T/tsend" hash)"
	H42=$(field "$T/tsend" hash)
done
xfer "$ADDR_B" 9101 43
check "tcpxfer: another seed gives another hash" [ "$(field "$T/tsend" hash)" != "$H42" ]

# --- udpping: 200 pings at 1000/s, every one answered, RTT sane
bg_ns "$B" "$U/udpping" server --port 9200 --ready "$T/rp" --time-limit 20 >"$T/pserv" 2>&1
P=$LDT_LAST_PID
wait_for_file "$T/rp" 5 || fail "udpping server did not start"
ns_exec "$A" "$U/udpping" client --dst "$ADDR_B" --port 9200 --count 200 --rate 1000 \
	--time-limit 10 >"$T/ping" || fail "udpping client failed"
ns_exec "$A" "$U/udpping" client --dst "$ADDR6_B" --port 9200 --count 50 --rate 1000 \
	--time-limit 10 >"$T/ping6" || fail "udpping client v6 failed"
bg_stop "$P"
cat "$T/ping" "$T/ping6"
check "udpping: 200 answered" eq "$(field "$T/ping" received)" 200
check "udpping v6: 50 answered" eq "$(field "$T/ping6" received)" 50
check "udpping: p50 > 0" ge "$(field "$T/ping" rtt_us_p50)" 0.1
check "udpping: p99 < 100 ms" le "$(field "$T/ping" rtt_us_p99)" 100000
check "udpping: p50 <= p99 <= max" sh -c "awk 'BEGIN { exit !($(field "$T/ping" rtt_us_p50) <= $(field "$T/ping" rtt_us_p99) && $(field "$T/ping" rtt_us_p99) <= $(field "$T/ping" rtt_us_max)) }'"

# --- bad usage exits 2
"$U/udpsend" --port 9000 >/dev/null 2>&1; rc=$?
check "udpsend without --dst exits 2" eq "$rc" 2
"$U/udprecv" --port 0 >/dev/null 2>&1; rc=$?
check "udprecv --port 0 exits 2" eq "$rc" 2

ldt_done

#!/bin/sh
# ldt: serial (its checks measure delay, rate or loss statistics)
# Reorder and corrupt through shape.pipe on real traffic:
# - reorder = 0.25 behind a 10 ms delay: the receiver sees datagrams out of
#   order, none lost; every = 5 sends each 5th one ahead;
# - corrupt = 1 with keep_checksums = true: every datagram arrives with
#   exactly one payload bit flipped (IPv4 and IPv6, loopback, where the
#   kernel leaves the checksum to be finished: CSUM_NOTREADY);
# - corrupt = 1 with keep_checksums = false: the receiver's kernel rejects
#   them all as checksum errors.
LDT_AREA=shp-impair
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend udprecv
require_cmd python3
ldt_tmpdir
ns_create a; NS=$LDT_NS
shape_policy "$LDT_TMP/reorder.lua" "delay = 10, reorder = 0.25, seed = 3"
shape_policy "$LDT_TMP/every.lua" "delay = 10, every = 5, seed = 3"
shape_policy "$LDT_TMP/keep.lua" "corrupt = 1, keep_checksums = true, seed = 4"
shape_policy "$LDT_TMP/nokeep.lua" "corrupt = 1, keep_checksums = false, seed = 4"

iptables_ns "$NS" -A OUTPUT -p udp --dport 9400:9401 -j NFQUEUE --queue-num 0
ip6tables_ns "$NS" -A OUTPUT -p udp --dport 9400:9401 -j NFQUEUE --queue-num 0

ld_start "$NS" "$LDT_TMP/reorder.lua" --queue 0
udp_run "$NS" 127.0.0.1 9400 2000 "$LDT_TMP/r.json" --rate 1000
ld_stop
log "reorder 0.25: $(cat "$LDT_TMP/r.json")"
check "reorder: all 2000 arrive" [ "$(json_get "$LDT_TMP/r.json" unique)" = 2000 ]
check "reorder: the receiver sees out-of-order arrival" within "$(json_get "$LDT_TMP/r.json" out_of_order)" 100 2000

ld_start "$NS" "$LDT_TMP/every.lua" --queue 0
UDP_RECV_ARGS="--seqs $LDT_TMP/e.seqs" udp_run "$NS" 127.0.0.1 9400 500 "$LDT_TMP/e.json" --rate 500
ld_stop
# Each 5th datagram (seq 4, 9, ...) arrives before the 10 ms-delayed ones
# sent just before it: it comes ahead of its predecessor.
AHEAD=$(awk '{ pos[$1] = NR } END { for (s = 4; s < 500; s += 5) if (pos[s] < pos[s - 1]) n++; print n + 0 }' "$LDT_TMP/e.seqs")
check "every = 5: all 500 arrive" [ "$(json_get "$LDT_TMP/e.json" unique)" = 500 ]
check "every = 5: each 5th datagram overtakes the one before it ($AHEAD of 100)" within "$AHEAD" 95 100

# Corrupt, checksums kept: compare each payload's filler (bytes 16..) and
# header with what udpsend sent (filler 0x00): exactly one bit differs.
cat >"$LDT_TMP/recv.py" <<'PY'
import socket, sys, struct
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
n, size = int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(family, socket.SOCK_DGRAM)
# room for the whole burst: a busy machine may not run this loop for a while
s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", socket.SO_RCVBUF), 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(2.0)
with open(sys.argv[5], "w") as f:
    f.write("ready\n")
got = one_bit = exactly_one = 0
seqs = set()
try:
    while got < n:
        d = s.recv(65535)
        got += 1
        flips = sum(bin(b).count("1") for b in d[16:]) if len(d) == size else 99
        seq = struct.unpack_from("<Q", d)[0]
        if seq >= n:            # the flip hit the sequence number
            flips += 1
        elif flips == 0 and seq not in seqs:
            pass                # the flip hit the timestamp (not checkable)
        seqs.add(seq)
        if flips <= 1:
            one_bit += 1
        if flips == 1:
            exactly_one += 1
except socket.timeout:
    pass
print('{"received":%d,"at_most_one_bit":%d,"one_bit":%d}' % (got, one_bit, exactly_one))
PY
corrupt_run() {  # corrupt_run DST OUT
	rm -f "$2.ready"
	bg_ns "$NS" python3 "$LDT_TMP/recv.py" "$1" 9401 500 200 "$2.ready" >"$2"
	CR=$LDT_LAST_PID
	wait_for_file "$2.ready" 5 || fail "python receiver did not start"
	ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst "$1" --port 9401 --count 500 --size 200 \
		--payload-byte 0 --rate 2000 >/dev/null || fail "udpsend"
	wait "$CR"
}
ld_start "$NS" "$LDT_TMP/keep.lua" --queue 0
corrupt_run 127.0.0.1 "$LDT_TMP/c4.json"
corrupt_run ::1 "$LDT_TMP/c6.json"
ld_stop
log "corrupt, checksums kept: IPv4 $(cat "$LDT_TMP/c4.json"), IPv6 $(cat "$LDT_TMP/c6.json")"
check "corrupt keep_checksums: all 500 IPv4 datagrams arrive" [ "$(json_get "$LDT_TMP/c4.json" received)" = 500 ]
check "corrupt keep_checksums: all 500 IPv6 datagrams arrive" [ "$(json_get "$LDT_TMP/c6.json" received)" = 500 ]
# (a flip in the 8-byte send timestamp cannot be seen: allow 10% of those)
check "corrupt: no payload has more than one bit changed" [ "$(json_get "$LDT_TMP/c4.json" at_most_one_bit)" = 500 ]
check "corrupt: at least 90% visibly changed by one bit" within "$(json_get "$LDT_TMP/c4.json" one_bit)" 450 500
check "corrupt: the daemon sent modified payloads" [ "$(ld_counter modified)" = 1000 ]

# Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors ...
csum_errors() { ns_exec "$NS" awk '/^Udp:/ { if (h) { print $8; exit } h = 1 }' /proc/net/snmp; }
E0=$(csum_errors)
ld_start "$NS" "$LDT_TMP/nokeep.lua" --queue 0
corrupt_run 127.0.0.1 "$LDT_TMP/n4.json"
ld_stop
E1=$(csum_errors)
check "corrupt without checksum fix: none delivered" [ "$(json_get "$LDT_TMP/n4.json" received)" = 0 ]
check "corrupt without checksum fix: the receiver counts 500 checksum errors ($((E1 - E0)))" [ $((E1 - E0)) = 500 ]
ldt_done

#!/bin/sh
# C programs on divert(4) sockets (libluadivert-divert), written the FreeBSD
# way (scripts/examples/c/), on live traffic between two namespaces, with
# divert rules from `luadivert rules add`:
#  - the API's edges (tests/divert/divert_check.c): EADDRINUSE, short
#    buffers, malformed writes, poll/EAGAIN, SO_RCVBUF, fork, a packet
#    written without a read, the program's other sockets untouched;
#  - a natd-style loop: rewritten packets arrive rewritten, unwritten ones
#    are missing (and counted), the rest pass; inbound packets carry the
#    veth's address and name, outbound ones INADDR_ANY;
#  - a second program on a second port at the same time, in poll() on a
#    non-blocking socket; 100k packets through it, none lost or duplicated;
#  - a crafted RST written without a read refuses a TCP connection;
#  - killed programs: traffic passes (bypass) or stops (--fail-closed);
#    `rules del` leaves nothing behind.
# Under tests/run.sh's ASan pass (LUADIVERT=*asan*) the programs are the
# -asan builds, with the library compiled in sanitized.
LDT_AREA=divert-c
. "$(dirname "$0")/../lib/netns.sh"
require_root
require_tools udpsend udprecv tcpxfer
require_cmd iptables-nft-save
ldt_tmpdir
T=$LDT_TMP
case "$LUADIVERT" in *asan*) SFX=-asan ;; *) SFX= ;; esac
EX="$LDT_ROOT/build/examples"
for p in divert_nat divert_tee divert_rst divert_check; do
	[ -x "$EX/$p$SFX" ] || fail "missing $EX/$p$SFX: run make"
done
export LUADIVERT_DIVERT_STATS=1
N=200

ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0      # v0a 198.18.0.1 in A, v0b 198.18.0.2 in B
rules() { ns_exec "$B" "$LUADIVERT" rules "$@"; }
jnum() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }
# recv_bg NS PORT COUNT NAME: a bounded receiver, output in $T/NAME
recv_bg() {
	bg_ns "$1" "$LDT_TOOLS/udprecv" --port "$2" --count "$3" --idle-ms 1500 \
		--time-limit "${RECV_LIMIT:-4}" >"$T/$4" 2>&1
	eval "PID_$4=\$LDT_LAST_PID"
	wait_for_port "$1" udp "$2" || fail "udprecv on $2 did not start"
}
send() {  # send NS DST PORT COUNT [RATE]
	ns_exec "$1" "$LDT_TOOLS/udpsend" --dst "$2" --port "$3" --count "$4" \
		--rate "${5:-4000}" --size 16 --time-limit 10 >/dev/null
}
start() {  # start NAME PROGRAM ARGS...: in B, output in $T/NAME.out
	_n=$1; shift
	bg_ns "$B" "$@" >"$T/$_n.out" 2>&1
	eval "PID_$_n=\$LDT_LAST_PID"
	wait_for_output "$T/$_n.out" '^ready' 10 || { cat "$T/$_n.out" >&2; fail "$_n did not start"; }
}

# --- 1. the API's edges
rules add --queue 21 --hook output --family 4 --filter 'udp dst port 9020' || fail "rules add 21"
ns_exec "$B" timeout 30 "$EX/divert_check$SFX" 21 9020 >"$T/check.out" 2>&1
RC=$?
grep -v '^ok' "$T/check.out" >&2
check "divert_check: all $(grep -c '^ok' "$T/check.out") checks pass" [ "$RC" = 0 ]

# --- 2. natd-style loop on port 11, and a tee in poll() on port 12 beside it
rules add --queue 11 --hook input,output --family 4 \
	--filter 'udp and (port 9000 or port 9002 or port 9003 or port 9004)' || fail "rules add 11"
rules add --queue 12 --hook input --filter 'udp dst port 9010' || fail "rules add 12"
check "rules list: the filter text next to the bytecode" \
	sh -c "ip netns exec $B $LUADIVERT rules list |
	       grep -- '-m bpf --bytecode' | grep -q 'luadivert rules add; filter: udp dst port 9010'"
check "rules list: says they stay until rules del" \
	sh -c "ip netns exec $B $LUADIVERT rules list | grep -q 'queue 12: added with'"
start nat "$EX/divert_nat$SFX" -p 11 -r 9000:9001 -D 9002 -v
LUADIVERT_DIVERT_QUEUE_MAXLEN=65536 start tee "$EX/divert_tee$SFX" -p 12 -q -P -b 4194304

recv_bg "$B" 9001 $N r9001
RECV_LIMIT=2 recv_bg "$B" 9000 $N r9000
RECV_LIMIT=2 recv_bg "$B" 9002 $N r9002
recv_bg "$B" 9003 $N r9003
recv_bg "$B" 9010 $N r9010
recv_bg "$A" 9004 $N r9004
send "$A" "$ADDR_B" 9000 $N
send "$A" "$ADDR_B" 9002 $N
send "$A" "$ADDR_B" 9003 $N
send "$A" "$ADDR_B" 9010 $N
send "$B" "$ADDR_A" 9004 $N
for r in r9001 r9000 r9002 r9003 r9010 r9004; do
	eval "wait_for_exit \$PID_$r 8"
done
check "nat: packets for 9000 arrive rewritten to 9001 ($(jnum "$T/r9001" received)/$N)" \
	[ "$(jnum "$T/r9001" received)" = $N ]
check "nat: nothing arrives at 9000" [ "$(jnum "$T/r9000" received)" = 0 ]
check "nat: unwritten packets (9002) are missing" [ "$(jnum "$T/r9002" received)" = 0 ]
check "nat: packets written back unchanged arrive (9003)" [ "$(jnum "$T/r9003" received)" = $N ]
check "nat: outbound packets arrive (9004 in A)" [ "$(jnum "$T/r9004" received)" = $N ]
check "nat: inbound: the veth's address and name ($(grep -c '^in v0b 198.18.0.2 redirect' "$T/nat.out"))" \
	[ "$(grep -c '^in v0b 198.18.0.2 redirect' "$T/nat.out")" = $N ]
check "nat: outbound: INADDR_ANY ($(grep -c '^out v0b 0.0.0.0 pass' "$T/nat.out"))" \
	[ "$(grep -c '^out v0b 0.0.0.0 pass' "$T/nat.out")" = $N ]
check "nat: no packet with another address" [ "$(grep -Ec '^(in|out) ' "$T/nat.out")" = $((4 * N)) ]
check "tee beside it: its packets arrive" [ "$(jnum "$T/r9010" received)" = $N ]
# IPv6 through the same PF_INET divert socket, as on FreeBSD
recv_bg "$B" 9010 $N r6
send "$A" "$ADDR6_B" 9010 $N
wait_for_exit "$PID_r6" 6
check "tee: IPv6 packets read and written back arrive" [ "$(jnum "$T/r6" received)" = $N ]

# --- 3. 100k packets through the tee (poll, non-blocking reads), bounded rate
BIG=100000
RECV_LIMIT=20 recv_bg "$B" 9010 $BIG rbig
send "$A" "$ADDR_B" 9010 $BIG 50000
wait_for_exit "$PID_rbig" 20
check "100k: all arrive ($(jnum "$T/rbig" received))" [ "$(jnum "$T/rbig" received)" = $BIG ]
check "100k: none twice, none missing" \
	sh -c "[ '$(jnum "$T/rbig" duplicates)' = 0 ] && [ '$(jnum "$T/rbig" missing)' = 0 ]"
log "kernel queue 12: $(nfq_stats "$B" 12)"

bg_stop "$PID_nat" TERM 10
check "nat: the unwritten packets are counted" grep -q "unwritten $N " "$T/nat.out"
bg_stop "$PID_tee" TERM 10
check "tee: poll() woke it and non-blocking reads ended in EAGAIN" \
	grep -qE "^packets $((2 * N + BIG)) eagain [1-9]" "$T/tee.out"

# --- 4. a crafted RST, written without a read, refuses a connection
rules add --queue 14 --hook input --family 4 --filter 'tcp dst port 9100' || fail "rules add 14"
bg_ns "$B" "$LDT_TOOLS/tcpxfer" recv --port 9100 --time-limit 10 >"$T/listener.out" 2>&1
PID_listener=$LDT_LAST_PID
wait_for_port "$B" tcp 9100 || fail "listener"
start rst "$EX/divert_rst$SFX" -p 14 -v
connect() { ns_exec "$A" "$LDT_TOOLS/tcpxfer" send --dst "$ADDR_B" --port 9100 --bytes 1000 \
	--time-limit 3 >"$T/connect.out" 2>&1; }
connect
check "rst: the crafted RST arrives: connection refused" grep -q 'refused' "$T/connect.out"
check "rst: it says so" grep -q "^rst $ADDR_A:" "$T/rst.out"
bg_stop "$PID_rst" TERM 10
rules del --queue 14 >/dev/null
check "without it the listener accepts (the RST was the program's)" connect
wait_for_exit "$PID_listener" 5

# --- 5. killed: bypass passes, --fail-closed drops; rules del cleans up
start tee2 "$EX/divert_tee$SFX" -p 12 -q
kill -KILL "$PID_tee2"; wait_for_exit "$PID_tee2" 5
recv_bg "$B" 9010 $N rkill
send "$A" "$ADDR_B" 9010 $N
wait_for_exit "$PID_rkill" 8
check "killed, bypass: traffic passes" [ "$(jnum "$T/rkill" received)" = $N ]
rules add --queue 13 --hook input --family 4 --filter 'udp dst port 9030' --fail-closed ||
	fail "rules add 13"
start tee3 "$EX/divert_tee$SFX" -p 13 -q
kill -KILL "$PID_tee3"; wait_for_exit "$PID_tee3" 5
RECV_LIMIT=2 recv_bg "$B" 9030 $N rclosed
send "$A" "$ADDR_B" 9030 $N
wait_for_exit "$PID_rclosed" 6
check "killed, --fail-closed: traffic stops" [ "$(jnum "$T/rclosed" received)" = 0 ]
for q in 11 12 13 21; do rules del --queue $q >/dev/null || fail "rules del $q"; done
check "rules del: no luadivert rule left" \
	[ "$(ip netns exec "$B" iptables-nft-save | grep -c LUADIVERT)" = 0 ]
check "rules del: rules list shows none" \
	sh -c "ip netns exec $B $LUADIVERT rules list | grep -q '^no luadivert rules'"
ldt_done

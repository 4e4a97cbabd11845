# shellcheck shell=sh
# tests/lib/engine.sh - helpers for tests that run `luadivert run` on real
# traffic. Source after tests/lib/netns.sh.
#
#   ld_start NS POLICY [ARGS...]   start luadivert in NS (queue from ARGS, default 0),
#                                  wait until the queue is bound; LD_PID, LD_LOG
#   ld_stop [SIGNAL]               stop it, wait; LD_RC is its exit status; the policy's
#                                  "ld-test-stats: ..." stderr lines go to $LD_TEST_STATS
#                                  (if set: the sandboxed daemon cannot write files)
#   ld_counter NAME                a value from the last counters line in LD_LOG
#   udp_run NS DST PORT COUNT OUT [udpsend args...]
#                                  start udprecv in NS, send COUNT datagrams, wait; OUT is
#                                  udprecv's JSON line (receiver runs where DST lives: NS;
#                                  the sender runs in UDP_SEND_NS if set). The receiver stops
#                                  at COUNT, or UDP_WAIT seconds (default 2) after the send.
#   json_get FILE KEY              a number from a JSON line
#   tcp_run NS DST PORT BYTES SEED OUT
#                                  tcpxfer BYTES from NS to DST:PORT (receiver in NS);
#                                  OUT.send / OUT.recv are their JSON lines
#   json_hash FILE                 the "hash" of a tcpxfer JSON line

LD_N=0

ld_start() {
	_ns=$1; _pol=$2; shift 2
	LD_N=$((LD_N + 1))
	LD_LOG="$LDT_TMP/luadivert.$LD_N.log"
	LD_PIDFILE="$LDT_TMP/luadivert.$LD_N.pid"
	_q=0
	_prev=""
	for _a in "$@"; do
		[ "$_prev" = "--queue" ] && _q=$_a
		_prev=$_a
	done
	bg_ns "$_ns" "$LUADIVERT" run "$_pol" --no-rules --pidfile "$LD_PIDFILE" "$@" >"$LD_LOG" 2>&1
	LD_PID=$LDT_LAST_PID
	if ! wait_for_queue "$_ns" "$_q" 10; then
		cat "$LD_LOG" >&2
		fail "luadivert did not bind queue $_q"
	fi
}

ld_stop() {
	kill "-${1:-TERM}" "$LD_PID" 2>/dev/null
	wait_for_exit "$LD_PID" 20 || { kill -KILL "$LD_PID"; fail "luadivert did not stop within 20 s"; }
	wait "$LD_PID" 2>/dev/null
	LD_RC=$?
	if [ -n "${LD_TEST_STATS:-}" ]; then
		sed -n 's/^ld-test-stats: //p' "$LD_LOG" >"$LD_TEST_STATS"
	fi
}

ld_counter() {
	grep 'received [0-9]' "$LD_LOG" | tail -n 1 | tr ' ' '\n' | awk -v k="$1" 'f { print; exit } $0 == k { f = 1 }'
}

json_get() {
	sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" "$1"
}

# udp_run NS DST PORT COUNT OUT [udpsend args...]
udp_run() {
	_ns=$1; _dst=$2; _port=$3; _count=$4; _out=$5; shift 5
	rm -f "$_out.ready"
	bg_ns "$_ns" "$LDT_TOOLS/udprecv" --port "$_port" --count "$_count" --idle-ms 1500 \
		--time-limit 60 --ready "$_out.ready" ${UDP_RECV_ARGS:-} >"$_out"
	_rp=$LDT_LAST_PID
	wait_for_file "$_out.ready" 5 || fail "udprecv did not start"
	ns_exec "${UDP_SEND_NS:-$_ns}" "$LDT_TOOLS/udpsend" --dst "$_dst" --port "$_port" \
		--count "$_count" --time-limit 30 "$@" >"$_out.sent" || fail "udpsend failed"
	wait_for_exit "$_rp" "${UDP_WAIT:-2}" || kill -TERM "$_rp" 2>/dev/null
	wait "$_rp"
	grep -q '"received"' "$_out" || fail "udprecv printed no result"
}

tcp_run() {
	_ns=$1; _dst=$2; _port=$3; _bytes=$4; _seed=$5; _out=$6
	rm -f "$_out.ready"
	bg_ns "$_ns" "$LDT_TOOLS/tcpxfer" recv --port "$_port" --ready "$_out.ready" \
		--time-limit 60 >"$_out.recv"
	_rp=$LDT_LAST_PID
	wait_for_file "$_out.ready" 5 || fail "tcpxfer recv did not start"
	ns_exec "$_ns" "$LDT_TOOLS/tcpxfer" send --dst "$_dst" --port "$_port" --bytes "$_bytes" \
		--seed "$_seed" --time-limit 60 >"$_out.send" || fail "tcpxfer send failed"
	wait "$_rp"
}

json_hash() {
	sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$1"
}

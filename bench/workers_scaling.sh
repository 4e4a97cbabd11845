#!/bin/sh
# bench/workers_scaling.sh - issue 16: `luadivert run --workers N` against N
# bare-C batched NFQUEUE loops (bench/bare_nfq_batched, one per queue, pinned
# like luadivert's workers when N > 1: loop i on CPU i mod CPUs) on the same N queues,
# in the same run, for N = 1 .. the number of CPUs (at most 8).
#
# One rule spreads the traffic: -j NFQUEUE --queue-balance Q:Q+N-1 (the
# kernel hashes the addresses, not the ports, so the packets come from 16
# address pairs on lo, 198.18.1.1-16 inside our namespace). Each measurement
# is a drain, as in bench/run.sh: the readers (bare loops or luadivert's
# workers) are stopped, WORKERS_DRAIN_N packets are queued, and
# build/bench/nfq_drain_multi times how fast they empty every queue. The hash
# does not split 16 pairs evenly; both readers get the same split (same
# addresses, same boot's hash key) and the longest queue sets the time of
# both, so the ratio is fair; max_share says how uneven it was.
#
# Prints "key value" lines (workers.*) for bench/report.py: per N the median
# pkt/s of bare C and of luadivert (pass_all policy) over WORKERS_RUNS
# alternating rounds. Goal (report.py): luadivert >= 0.9 of bare C at every N.
#
# Root; everything happens in a namespace this script creates and deletes.
# Knobs: WORKERS_RUNS=5 WORKERS_DRAIN_N=40000 WORKERS_MAX=<CPUs, at most 8>
#        LUADIVERT=./luadivert
LDT_AREA=bench-workers
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
require_root
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"
ldt_tmpdir; T=$LDT_TMP
RUNS=${WORKERS_RUNS:-5}
DRAIN_N=${WORKERS_DRAIN_N:-40000}
NCPU=$(nproc)
MAXW=${WORKERS_MAX:-$NCPU}
[ "$MAXW" -gt 8 ] && MAXW=8
QB=200            # queues QB..QB+N-1
PORT=9600
SIZE=36           # a 64-byte IP packet, as in bench/run.sh
MAXLEN=65536
BB="$LDT_ROOT/build/bench"
for t in bare_nfq_batched nfq_drain_multi; do
	[ -x "$BB/$t" ] || fail "missing $BB/$t: run make"
done
[ -x "$LDT_TOOLS/udpsend" ] || fail "missing $LDT_TOOLS/udpsend: run make"
command -v taskset >/dev/null 2>&1 || fail "needs taskset (util-linux)"

median() { sort -g | awk '{ a[NR] = $1 } END { if (!NR) print "nan";
	else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
jget() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1" | tail -n 1; }

ns_create w; NW=$LDT_NS
i=1
while [ $i -le 16 ]; do
	ns_exec "$NW" ip addr add "198.18.1.$i/32" dev lo || fail "ip addr add"
	i=$((i + 1))
done
# an accepted packet ends in a DROP (no ICMP, no socket): the reader pays only for the queue
iptables_ns "$NW" -A INPUT -p udp --dport $PORT -j DROP || fail "iptables in $NW"

# send COUNT: COUNT packets spread over the 16 address pairs
send() {
	_per=$(($1 / 16)); _a=1
	while [ $_a -le 16 ]; do
		ns_exec "$NW" "$LDT_TOOLS/udpsend" --dst "198.18.1.$_a" --port $PORT --size $SIZE \
			--count $_per --time-limit 10 >/dev/null || fail "udpsend"
		_a=$((_a + 1))
	done
}
# start CFG N: the readers of queues QB..QB+N-1; READERS = the pids to stop
start() {
	READERS=""
	if [ "$1" = bare ]; then
		_q=0
		while [ $_q -lt "$2" ]; do
			# pinned as luadivert pins its workers: only with N > 1
			_pin=""
			[ "$2" -gt 1 ] && _pin="taskset -c $((_q % NCPU))"
			# shellcheck disable=SC2086
			bg_ns "$NW" $_pin "$BB/bare_nfq_batched" --queue $((QB + _q)) \
				--maxlen $MAXLEN >"$T/bare.$_q.out" 2>&1
			READERS="$READERS $LDT_LAST_PID"
			_q=$((_q + 1))
		done
		STOPPER=$READERS
	else
		bg_ns "$NW" "$LUADIVERT" run bench/policies/pass_all.lua --workers "$2" --queue $QB \
			--no-rules --queue-maxlen $MAXLEN --pidfile "$T/ld.pid" >"$T/ld.out" 2>&1
		STOPPER=$LDT_LAST_PID
	fi
	_q=0
	while [ $_q -lt "$2" ]; do
		wait_for_queue "$NW" $((QB + _q)) 10 || { cat "$T/ld.out" >&2; fail "$1: queue $((QB + _q)) not bound"; }
		_q=$((_q + 1))
	done
	# luadivert: the readers are the supervisor's children, its workers
	[ "$1" = ld ] && READERS=$(cat "/proc/$STOPPER/task/$STOPPER/children")
	[ -n "$READERS" ] || fail "$1: no reader processes"
	send 20000    # warm up (the policy's JIT traces)
	sleep 0.1
}
stop() {
	for _p in $STOPPER; do bg_stop "$_p" TERM 20; done
}
# drain CFG N: stop the readers, queue DRAIN_N packets, time the drain
drain() {
	_args=""
	for _p in $READERS; do kill -STOP "$_p"; _args="$_args --pid $_p"; done
	send "$DRAIN_N"
	# shellcheck disable=SC2086
	ns_exec "$NW" "$BB/nfq_drain_multi" --queue $QB --queues "$2" $_args --timeout 30 \
		>"$T/drain" || { for _p in $READERS; do kill -CONT "$_p"; done; fail "$1 x $2: drain failed"; }
	jget "$T/drain" pps >>"$T/$1.$2.pps"
	echo "$(jget "$T/drain" max_queue) $(jget "$T/drain" drained)" |
		awk '{ printf "%.3f\n", $2 ? $1 / $2 : 0 }' >>"$T/share.$2"
}

N=1
while [ "$N" -le "$MAXW" ]; do
	if [ "$N" = 1 ]; then
		iptables_ns "$NW" -t mangle -A INPUT -p udp --dport $PORT -j NFQUEUE --queue-num $QB ||
			fail "iptables in $NW"
	else
		iptables_ns "$NW" -t mangle -R INPUT 1 -p udp --dport $PORT -j NFQUEUE \
			--queue-balance $QB:$((QB + N - 1)) || fail "iptables in $NW"
	fi
	log "N = $N: $RUNS rounds of bare C and luadivert"
	r=0
	while [ $r -lt "$RUNS" ]; do
		for cfg in bare ld; do
			start $cfg "$N"
			drain $cfg "$N"
			stop
		done
		r=$((r + 1))
	done
	echo "workers.$N.bare_pps $(median <"$T/bare.$N.pps")"
	echo "workers.$N.ld_pps $(median <"$T/ld.$N.pps")"
	echo "workers.$N.max_share $(median <"$T/share.$N")"
	N=$((N + 1))
done
echo "workers.max $MAXW"
echo "workers.ncpu $NCPU"
echo "workers.runs $RUNS"
echo "workers.drain_n $DRAIN_N"

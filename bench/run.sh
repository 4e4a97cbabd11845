#!/bin/sh
# bench/run.sh - luadivert against the bare-C NFQUEUE limit, in one run.
# Called by `make bench` (root). Everything happens in network namespaces
# this script creates and deletes (tests/lib/netns.sh); no rule is added in
# the root namespace and no traffic leaves the namespaces.
#
# What it measures (issue 8), each as a median of BENCH_RUNS runs:
#  1. small packets (64-byte IPv4/UDP on loopback inside a namespace):
#     - drain: the reader is stopped (SIGSTOP), BENCH_DRAIN_N packets are
#       queued, and bench/nfq_drain times how fast the reader empties the
#       queue and how much CPU it spends: the reader's own limit, without the
#       sender competing for the 2 CPUs;
#     - steady: udpsend as fast as it can for BENCH_STEADY_S seconds, the
#       accepted packets counted by a DROP rule after the queue (an accepted
#       packet goes on to the next hook: the queue rule is in mangle INPUT,
#       the counting DROP in filter INPUT);
#     for no queue, bare C per-packet, bare C batched, luadivert pass-all,
#     parse-and-match, rewrite+checksum; plus mean batch size, the kernel's
#     drop counters, and a run at 80% of the steady maximum that must not drop;
#  2. bulk TCP over a veth with the queue on the receiving side (iperf3, or
#     tcpxfer when iperf3 is missing);
#  3. UDP round trips (udpping) at 1000/s, idle and with 50% of the bare-C
#     steady maximum as background load through the same queue;
#  4. luadivert's peak RSS (VmHWM) and its Lua heap across BENCH_HEAP_N packets;
#  5. shaping the host's own traffic: TCP through pipes at the sender's
#     output vs the receiver's input (bench/shape_egress.sh, issue 17);
#  6. issue 16: bulk TCP with divert.OFFLOAD vs no queue (bench/offload_bench.sh),
#     idle round trips with --busy-poll vs bare C (bench/busy_poll_bench.sh);
#     BENCH_ONLY="offload busy_poll" runs just those;
#  7. --workers N: luadivert with N workers against N bare-C loops on the same
#     N queues, N = 1 .. CPUs (bench/workers_scaling.sh, issue 16);
#  8. PROFILE=1: perf record of the drain runs of bare C batched and
#     luadivert pass-all, reports in build/bench/profile/.
# Prints the table and writes bench/RESULTS.md (bench/report.py).
#
# Knobs: BENCH_RUNS=7 BENCH_DRAIN_N=50000 BENCH_STEADY_S=0.5 BENCH_HEAP_N=1000000
#        BENCH_TCP_S=2 BENCH_TCP_RUNS=3 BENCH_ONLY="bare_batched ld_pass workers ..."
#        BENCH_RESULTS=bench/RESULTS.md LUADIVERT=./luadivert PROFILE=1
LDT_AREA=bench
LDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$LDT_ROOT/tests/lib/netns.sh"
require_root
cd "$LDT_ROOT" || fail "cd $LDT_ROOT"

RUNS=${BENCH_RUNS:-7}
DRAIN_N=${BENCH_DRAIN_N:-50000}
STEADY_S=${BENCH_STEADY_S:-0.5}
HEAP_N=${BENCH_HEAP_N:-1000000}
TCP_S=${BENCH_TCP_S:-2}
TCP_RUNS=${BENCH_TCP_RUNS:-3}
SIZE=36            # UDP payload: 20 + 8 + 36 = a 64-byte IP packet
MAXLEN=65536       # queue length: a whole drain batch fits
PORT=9000          # throughput traffic to config k: PORT + k, queue k
PING_PORT=9300     # latency traffic to config k: PING_PORT + k, queue k
TQ=1               # TCP queue (in its own namespace)
RESULTS=${BENCH_RESULTS:-$LDT_ROOT/bench/RESULTS.md}
BB="$LDT_ROOT/build/bench"
PROFDIR="$LDT_ROOT/build/bench/profile"
START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

for t in udpsend udpping tcpxfer; do
	[ -x "$LDT_TOOLS/$t" ] || fail "missing $LDT_TOOLS/$t: run make"
done
for t in bare_nfq_simple bare_nfq_batched nfq_drain; do
	[ -x "$BB/$t" ] || fail "missing $BB/$t: run make"
done
command -v python3 >/dev/null 2>&1 || fail "bench/report.py needs python3"
HAVE_IPERF=0; command -v iperf3 >/dev/null 2>&1 && HAVE_IPERF=1
HAVE_PERF=0; command -v perf >/dev/null 2>&1 && HAVE_PERF=1

ldt_tmpdir; T=$LDT_TMP
R=$T/results          # "key value" lines, read by bench/report.py
: >"$R"
put() { printf '%s %s\n' "$1" "$2" >>"$R"; }
note() { printf '%s\n' "$*" >>"$T/notes"; log "$*"; }
: >"$T/notes"

# ----------------------------------------------------------------- luadivert
LD_OK=0
LD_EXTRA=""
if [ -x "$LUADIVERT" ] && "$LUADIVERT" --version >/dev/null 2>&1 &&
   "$LUADIVERT" check bench/policies/pass_all.lua >/dev/null 2>&1; then
	LD_OK=1
	# the queue rules are ours: keep luadivert from installing its own
	"$LUADIVERT" run --help 2>&1 | grep -q -- '--no-rules' && LD_EXTRA="--no-rules"
else
	note "luadivert rows skipped: $LUADIVERT is missing or cannot load bench/policies/pass_all.lua (run make)"
fi

# ---------------------------------------------------------------- helpers
# jget FILE KEY: a number (or hex string) from a tool's JSON line
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([-0-9a-fe.+]*\).*/\1/p" "$1" | tail -n 1; }
# median of the numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { if (!NR) print "nan";
	else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# calc EXPR: awk arithmetic
calc() { awk "BEGIN { printf \"%.6g\n\", $1 }"; }
elapsed() { echo $(( $(date +%s) - START )); }

# ---------------------------------------------------------- configurations
# Every reader of section 1 runs at the same time, config number k on queue
# k, fed through UDP port PORT+k (latency pings: PING_PORT+k); an idle
# reader sleeps in its receive call. The runs are interleaved (round 1 of
# every config, then round 2, ...) so that a slow moment of the machine (it
# may be shared) spreads over all configs instead of hitting one.
CONFIGS=""        # "name:k" words
# use_cfg NAME: set CFG CK CPORT CPING DPID DOUT for config NAME
use_cfg() {
	for _w in $CONFIGS; do
		[ "${_w%%:*}" = "$1" ] || continue
		CFG=$1; CK=${_w#*:}
		CPORT=$((PORT + CK)); CPING=$((PING_PORT + CK))
		DOUT="$T/$CFG.out"
		DPID=$(cat "$T/$CFG.dpid" 2>/dev/null)
		return 0
	done
	return 1
}
cfg_names() { for _w in $CONFIGS; do printf '%s ' "${_w%%:*}"; done; }
queued_names() { for _w in $CONFIGS; do [ "${_w%%:*}" = none ] || printf '%s ' "${_w%%:*}"; done; }
has_cfg() { use_cfg "$1" >/dev/null 2>&1; }
result() { awk -v k="$1" '$1 == k { print $2 }' "$R"; }

# the DROP rule's packet counter for the current config: packets accepted
drop_count() {
	iptables_ns "$NQ" -L INPUT -v -x -n | awk -v p="dpt:$CPORT" '$3 == "DROP" && $NF == p { print $1 }'
}
# queue_drops NS QUEUE: queue_dropped + user_dropped of the queue
queue_drops() { nfq_stats "$1" "$2" | awk '{ print $6 + $7 }'; }

# start_reader NAME NS QUEUE [FILES]: start the reader of config NAME; DPID,
# DOUT; its output and pid go to $T/FILES.out and .dpid (FILES: NAME)
start_reader() {
	_sr=${4:-$1}
	DOUT="$T/$_sr.out"
	case $1 in
	bare_simple)  bg_ns "$2" "$BB/bare_nfq_simple" --queue "$3" --maxlen $MAXLEN >"$DOUT" 2>&1 ;;
	bare_batched) bg_ns "$2" "$BB/bare_nfq_batched" --queue "$3" --maxlen $MAXLEN >"$DOUT" 2>&1 ;;
	c_divert)     # scripts/examples/c/divert_tee.c on libluadivert-divert
		bg_ns "$2" env LUADIVERT_DIVERT_QUEUE_MAXLEN=$MAXLEN \
			"$LDT_ROOT/build/examples/divert_tee" -p "$3" -q >"$DOUT" 2>&1 ;;
	ld_metrics)   # issue 13: pass-all serving /metrics, scraped 5 times a second
		bg_ns "$2" "$LUADIVERT" run bench/policies/pass_all.lua --queue "$3" \
			--queue-maxlen $MAXLEN --pidfile "$T/$_sr.pid" --metrics "127.0.0.1:$((9464 + $3))" \
			$LD_EXTRA >"$DOUT" 2>&1
		_lp=$LDT_LAST_PID
		bg_ns "$2" timeout 900 sh -c "while :; do curl -sf -o /dev/null \
			http://127.0.0.1:$((9464 + $3))/metrics; sleep 0.2; done"
		LDT_LAST_PID=$_lp ;;
	ld_record)    # issue 13: pass-all writing every packet to a pcapng file (rotated at 64 MiB)
		bg_ns "$2" "$LUADIVERT" run bench/policies/pass_all.lua --queue "$3" \
			--queue-maxlen $MAXLEN --pidfile "$T/$_sr.pid" --record "$T/$_sr.pcapng" \
			--record-max 64M $LD_EXTRA >"$DOUT" 2>&1 ;;
	ld_*)
		_pol=${1#ld_}
		# shellcheck disable=SC2086
		bg_ns "$2" "$LUADIVERT" run "bench/policies/$_pol.lua" --queue "$3" \
			--queue-maxlen $MAXLEN --pidfile "$T/$_sr.pid" $LD_EXTRA >"$DOUT" 2>&1 ;;
	*) fail "unknown config $1" ;;
	esac
	DPID=$LDT_LAST_PID
	echo "$DPID" >"$T/$_sr.dpid"
	if ! wait_for_queue "$2" "$3" 10; then
		cat "$DOUT" >&2
		fail "$1 did not bind queue $3"
	fi
}
stop_reader() {
	bg_stop "$DPID" TERM 20
}

# counts FILE: "packets batches" from the reader's last counters line
# (bare: {"packets":N,"batches":B,...}; luadivert: "received N ... batches B")
counts() {
	awk '/"packets":/ { l = $0; f = 1 } / received [0-9]/ { l = $0; f = 2 } END {
		n = split(l, w, /[ ,:{}"]+/)
		for (i = 1; i < n; i++) {
			if ((f == 1 && w[i] == "packets") || (f == 2 && w[i] == "received")) p = w[i + 1]
			if (w[i] == "batches") b = w[i + 1]
		}
		print p + 0, b + 0 }' "$1"
}
# snapshot: ask the current reader for its counters (SIGUSR1), wait for the line
snapshot() {
	_n=$(grep -c -e '"packets":' -e ' received [0-9]' "$DOUT")
	kill -USR1 "$DPID" 2>/dev/null
	_sn=0
	while [ "$(grep -c -e '"packets":' -e ' received [0-9]' "$DOUT")" -le "$_n" ] && [ $_sn -lt 40 ]; do
		sleep 0.05; _sn=$((_sn + 1))
	done
	counts "$DOUT"
}
snapshot_all() {  # snapshot_all TAG: $T/NAME.TAG for every queued config
	for _c in $(queued_names); do use_cfg "$_c"; snapshot >"$T/$_c.$1"; done
}
batch_mean() {  # batch_mean "p0 b0" "p1 b1"
	echo "$1 $2" | awk '{ db = $4 - $2; print (db > 0 ? ($3 - $1) / db : "nan") }'
}

send_burst() {  # send_burst COUNT [udpsend args]: to the current config, bounded
	_c=$1; shift
	ns_exec "$NQ" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port "$CPORT" --size $SIZE \
		--count "$_c" --time-limit 10 "$@"
}

# reader_pid: the process that reads the current config's queue: luadivert's
# worker (the one child of its supervisor, which runs no policy), else DPID
reader_pid() {
	_rp=$(awk '{ print $1 }' "/proc/$DPID/task/$DPID/children" 2>/dev/null)
	echo "${_rp:-$DPID}"
}
# drain_one: stop the current reader, fill its queue, time the drain
drain_one() {
	_dp=$(reader_pid)
	kill -STOP "$_dp"
	send_burst "$DRAIN_N" >/dev/null || { kill -CONT "$_dp"; fail "udpsend"; }
	ns_exec "$NQ" "$BB/nfq_drain" --pid "$_dp" --queue "$CK" --timeout 20 >>"$T/$CFG.drain" ||
		{ kill -CONT "$_dp"; fail "$CFG: drain failed"; }
}
drain_results() {  # drain_results NAME
	put "$1.drain_pps" "$(sed -n 's/.*"pps":\([0-9.]*\).*/\1/p' "$T/$1.drain" | median)"
	put "$1.cpu_ns" "$(sed -n 's/.*"cpu_ns_per_pkt":\([0-9.]*\).*/\1/p' "$T/$1.drain" | median)"
	# user/system split from clock ticks summed over the runs (10 ms each)
	awk -v hz="$(getconf CLK_TCK)" '{
		match($0, /"drained":[0-9]+/);     n += substr($0, RSTART + 10, RLENGTH - 10)
		match($0, /"utime_ticks":[0-9]+/); u += substr($0, RSTART + 14, RLENGTH - 14)
		match($0, /"stime_ticks":[0-9]+/); s += substr($0, RSTART + 14, RLENGTH - 14)
	} END { if (n) printf "%.0f %.0f\n", u * 1e9 / hz / n, s * 1e9 / hz / n }' "$T/$1.drain" >"$T/us"
	read -r _u _s <"$T/us"
	put "$1.user_ns" "$_u"
	put "$1.sys_ns" "$_s"
}

# steady_one: BENCH_STEADY_S of full-speed sending to the current config
steady_one() {
	_c0=$(drop_count)
	send_burst 1000000000 --time-limit "$STEADY_S" >"$T/send" || fail "udpsend"
	sleep 0.05     # let the reader finish what is queued
	_c1=$(drop_count)
	calc "($_c1 - $_c0) / $(jget "$T/send" elapsed_s)" >>"$T/$CFG.steady"
}

# rate80 NAME K: 2 s at 80% of NAME's steady maximum through a fresh reader
# of the same kind on queue K with luadivert's default queue length (4096,
# not the drain runs' MAXLEN, which would hide any burst); the kernel queue
# must not drop
rate80() {
	_rate=$(calc "int(0.8 * $(result "$1.steady_pps"))")
	CFG=$1.rate80; CK=$2; CPORT=$((PORT + CK))
	iptables_ns "$NQ" -A INPUT -p udp --dport "$CPORT" -j DROP &&
	iptables_ns "$NQ" -t mangle -A INPUT -p udp --dport "$CPORT" -j NFQUEUE --queue-num "$CK" ||
		fail "iptables in $NQ"
	_maxlen=$MAXLEN; MAXLEN=4096
	start_reader "$1" "$NQ" "$CK" "$1.rate80"
	MAXLEN=$_maxlen
	send_burst 2000 --rate 20000 >/dev/null || fail "udpsend"   # warm up, gently
	sleep 0.1
	_d0=$(queue_drops "$NQ" "$CK")
	send_burst $((_rate * 2)) --rate "$_rate" --time-limit 4 >"$T/send" || fail "udpsend"
	sleep 0.1
	_d1=$(queue_drops "$NQ" "$CK")
	stop_reader
	put "$1.rate80" "$_rate"
	put "$1.rate80_sent" "$(jget "$T/send" sent)"
	put "$1.rate80_drops" $((_d1 - _d0))
}

# latency_one PHASE: 500 round trips through the current config, with
# LOAD_PPS of background traffic to its port when PHASE is load
latency_one() {
	rm -f "$T/ping.ready"
	bg_ns "$NQ" "$LDT_TOOLS/udpping" server --port "$CPING" --bind 127.0.0.1 \
		--ready "$T/ping.ready" --time-limit 30 >/dev/null 2>&1
	_srv=$LDT_LAST_PID
	wait_for_file "$T/ping.ready" 5 || fail "udpping server did not start"
	_load=""
	if [ "$1" = load ]; then
		bg_ns "$NQ" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port "$CPORT" --size $SIZE \
			--rate "$LOAD_PPS" --count $((LOAD_PPS * 3)) --time-limit 3 >/dev/null 2>&1
		_load=$LDT_LAST_PID
		sleep 0.2
	fi
	ns_exec "$NQ" "$LDT_TOOLS/udpping" client --dst 127.0.0.1 --port "$CPING" \
		--count 500 --rate 1000 --time-limit 10 >"$T/ping" || fail "udpping"
	[ -n "$_load" ] && bg_stop "$_load"
	bg_stop "$_srv"
	for _k in p50 p99 max; do jget "$T/ping" "rtt_us_$_k" >>"$T/$CFG.lat_$1_$_k"; done
	jget "$T/ping" lost >>"$T/$CFG.lat_lost"
}

# rounds N FN CONFIG...: N rounds, each calling FN once per CONFIG (use_cfg first)
rounds() {
	_rn=$1; _fn=$2; shift 2; _r=0
	while [ $_r -lt "$_rn" ]; do
		for _rc in "$@"; do use_cfg "$_rc"; $_fn; done
		_r=$((_r + 1))
	done
}
latency_both() { latency_one idle; latency_one load; }

want() { [ -z "${BENCH_ONLY:-}" ] && return 0; case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------ 1. small packets
ns_create q; NQ=$LDT_NS
_k=0
for cfg in bare_batched none bare_simple ld_pass_all ld_parse_match ld_rewrite ld_metrics ld_record c_divert; do
	case $cfg in ld_*) [ $LD_OK = 1 ] || continue ;; esac
	[ "$cfg" != c_divert ] || [ -x build/examples/divert_tee ] ||
		{ note "C divert row skipped: build/examples/divert_tee is missing (run make)"; continue; }
	want "$cfg" || continue
	CONFIGS="$CONFIGS $cfg:$_k"
	_k=$((_k + 1))
done
for cfg in $(cfg_names); do
	use_cfg "$cfg"
	iptables_ns "$NQ" -A INPUT -p udp --dport "$CPORT" -j DROP || fail "iptables in $NQ"
	[ "$cfg" = none ] && continue
	iptables_ns "$NQ" -t mangle -A INPUT -p udp --dport "$CPORT" -j NFQUEUE --queue-num "$CK" &&
	iptables_ns "$NQ" -t mangle -A INPUT -p udp --dport "$CPING" -j NFQUEUE --queue-num "$CK" ||
		fail "iptables in $NQ"
	start_reader "$cfg" "$NQ" "$CK"
	send_burst 30000 >/dev/null || fail "udpsend"    # warm up (JIT traces)
done
sleep 0.2

if [ -n "$(queued_names)" ]; then
	log "small packets, drain: $(queued_names)($(elapsed) s)"
	snapshot_all s0
	# shellcheck disable=SC2046
	rounds "$RUNS" drain_one $(queued_names)
	snapshot_all s1
	# PROFILE=1: two more drains under perf, not counted (perf slows the reader)
	if [ "${PROFILE:-0}" = 1 ] && [ $HAVE_PERF = 1 ]; then
		mkdir -p "$PROFDIR"
		for cfg in bare_batched ld_pass_all ld_parse_match ld_rewrite; do
			has_cfg "$cfg" || continue
			use_cfg "$cfg"
			bg_run perf record -q -g -o "$PROFDIR/$cfg.data" -p "$(reader_pid)" >"$T/perf.$cfg.log" 2>&1
			_perf=$LDT_LAST_PID
			sleep 0.3
			mv "$T/$cfg.drain" "$T/$cfg.drain.keep"
			drain_one; drain_one
			mv "$T/$cfg.drain.keep" "$T/$cfg.drain"
			bg_stop "$_perf" INT 20
			perf report -i "$PROFDIR/$cfg.data" --stdio --no-children -g none \
				--sort dso --percent-limit 0.1 >"$PROFDIR/$cfg.dso.txt" 2>/dev/null
			perf report -i "$PROFDIR/$cfg.data" --stdio --no-children -g none \
				--sort dso,symbol --percent-limit 0.5 >"$PROFDIR/$cfg.txt" 2>/dev/null &&
				note "profile of $cfg while draining: build/bench/profile/$cfg.txt (perf report -i build/bench/profile/$cfg.data)"
		done
	fi
	snapshot_all s1b
	for cfg in $(queued_names); do drain_results "$cfg"; done
fi

log "small packets, steady: $(cfg_names)($(elapsed) s)"
# shellcheck disable=SC2046
rounds "$RUNS" steady_one $(cfg_names)
snapshot_all s2
for cfg in $(cfg_names); do
	put "$cfg.steady_pps" "$(median <"$T/$cfg.steady")"
	[ "$cfg" = none ] && continue
	put "$cfg.batch_drain" "$(batch_mean "$(cat "$T/$cfg.s0")" "$(cat "$T/$cfg.s1")")"
	put "$cfg.batch_steady" "$(batch_mean "$(cat "$T/$cfg.s1b")" "$(cat "$T/$cfg.s2")")"
done

has_cfg bare_batched && rate80 bare_batched 40
has_cfg ld_pass_all && rate80 ld_pass_all 41

# --------------------------------------------------------------- 3. latency
if has_cfg bare_batched; then
	LOAD_PPS=$(calc "int(0.5 * $(result bare_batched.steady_pps))")
	put load_pps "$LOAD_PPS"
	LAT_CONFIGS=""
	for cfg in none bare_batched ld_pass_all; do has_cfg "$cfg" && LAT_CONFIGS="$LAT_CONFIGS $cfg"; done
	log "latency:$LAT_CONFIGS ($(elapsed) s)"
	# shellcheck disable=SC2086
	rounds 3 latency_both $LAT_CONFIGS
	for cfg in $LAT_CONFIGS; do
		for phase in idle load; do
			for k in p50 p99 max; do
				put "$cfg.lat_${phase}_$k" "$(median <"$T/$cfg.lat_${phase}_$k")"
			done
		done
		put "$cfg.lat_lost" "$(awk '{ s += $1 } END { print s + 0 }' "$T/$cfg.lat_lost")"
	done
fi

for cfg in $(queued_names); do
	use_cfg "$cfg"
	put "$cfg.queue_dropped" "$(nfq_stats "$NQ" "$CK" | awk '{ print $6 }')"
	put "$cfg.user_dropped" "$(nfq_stats "$NQ" "$CK" | awk '{ print $7 }')"
	put "$cfg.vmhwm_kb" "$(awk '/^VmHWM/ { print $2 }' "/proc/$(reader_pid)/status")"
	stop_reader
	[ "$cfg" = ld_record ] && put ld_record.record_dropped \
		"$(sed -n 's/.* packets written, \([0-9]*\) not recorded.*/\1/p' "$DOUT" | tail -n 1)"
	[ "$cfg" = ld_record ] && rm -f "$T"/ld_record.pcapng*
done
# --------------------------------------------------------- 4. Lua heap, 1M packets
if [ $LD_OK = 1 ] && want heap; then
	log "Lua heap over $HEAP_N packets ($(elapsed) s)"
	CFG=ld_heap; CK=50; CPORT=$((PORT + CK))
	iptables_ns "$NQ" -A INPUT -p udp --dport "$CPORT" -j DROP &&
	iptables_ns "$NQ" -t mangle -A INPUT -p udp --dport "$CPORT" -j NFQUEUE --queue-num "$CK" ||
		fail "iptables in $NQ"
	start_reader ld_heap "$NQ" "$CK"
	send_burst "$HEAP_N" --time-limit 30 >/dev/null || fail "udpsend"
	sleep 0.2
	put ld_heap.vmhwm_kb "$(awk '/^VmHWM/ { print $2 }' "/proc/$(reader_pid)/status")"
	stop_reader
	line=$(grep 'bench-heap:' "$DOUT" | tail -n 1)
	if [ -n "$line" ]; then
		for k in init_kb warm_kb end_kb packets warm_at; do
			put "ld_heap.$k" "$(echo "$line" | tr ' ' '\n' | sed -n "s/^$k=//p")"
		done
	else
		note "the heap policy printed nothing: $(tail -n 3 "$DOUT" | tr '\n' ' ')"
	fi
fi

# ---------------------------------------------------------------- 2. bulk TCP
if want tcp; then
	ns_create ta; NA=$LDT_NS
	ns_create tb; NB=$LDT_NS
	veth_pair "$NA" "$NB" 1
	TCP_CONFIGS="none bare_batched"
	[ $LD_OK = 1 ] && TCP_CONFIGS="$TCP_CONFIGS ld_pass_all"
	[ $HAVE_IPERF = 1 ] || note "iperf3 not found: bulk TCP measured with tcpxfer (its hash costs CPU)"
	for cfg in $TCP_CONFIGS; do
		log "bulk TCP: $cfg ($(elapsed) s)"
		if [ "$cfg" != none ]; then
			iptables_ns "$NB" -t mangle -A INPUT -p tcp --dport 5201 -j NFQUEUE --queue-num $TQ ||
				fail "iptables in $NB"
			start_reader "$cfg" "$NB" $TQ
		fi
		: >"$T/tcp.$cfg"
		_run=0
		while [ $_run -lt "$TCP_RUNS" ]; do
			if [ $HAVE_IPERF = 1 ]; then
				bg_ns "$NB" iperf3 -s -1 -p 5201 -B "$ADDR_B" >/dev/null 2>&1
				_srv=$LDT_LAST_PID
				wait_for_port "$NB" tcp 5201 5 || fail "iperf3 server did not start"
				ns_exec "$NA" timeout $((TCP_S + 10)) iperf3 -c "$ADDR_B" -p 5201 -t "$TCP_S" -J \
					>"$T/iperf.json" 2>&1 || { cat "$T/iperf.json" >&2; fail "iperf3 ($cfg)"; }
				awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ {
					gsub(/[^0-9.e+]/, "", $2); printf "%.1f\n", $2 / 1e6; exit }' \
					"$T/iperf.json" >>"$T/tcp.$cfg"
				bg_stop "$_srv"
			else
				rm -f "$T/tcp.ready"
				bg_ns "$NB" "$LDT_TOOLS/tcpxfer" recv --port 5201 --ready "$T/tcp.ready" \
					--time-limit $((TCP_S * 5 + 10)) >"$T/tcp.recv" 2>&1
				_srv=$LDT_LAST_PID
				wait_for_file "$T/tcp.ready" 5 || fail "tcpxfer recv did not start"
				ns_exec "$NA" "$LDT_TOOLS/tcpxfer" send --dst "$ADDR_B" --port 5201 \
					--bytes $((TCP_S * 250000000)) --time-limit $((TCP_S * 5 + 10)) >/dev/null ||
					fail "tcpxfer ($cfg)"
				wait_for_exit "$_srv" 10
				jget "$T/tcp.recv" mbps >>"$T/tcp.$cfg"
			fi
			_run=$((_run + 1))
		done
		put "$cfg.tcp_mbps" "$(median <"$T/tcp.$cfg")"
		if [ "$cfg" != none ]; then
			put "$cfg.tcp_queue_dropped" "$(queue_drops "$NB" $TQ)"
			stop_reader
			iptables_ns "$NB" -t mangle -D INPUT -p tcp --dport 5201 -j NFQUEUE --queue-num $TQ
		fi
	done
fi

# ------------------------------------- 5. shaping the host's own traffic
if want egress && [ $LD_OK = 1 ] && [ $HAVE_IPERF = 1 ]; then
	log "egress shaping ($(elapsed) s)"
	sh "$LDT_ROOT/bench/shape_egress.sh" >>"$R" || note "bench/shape_egress.sh failed"
fi

# ------------------------- 6. issue 16: offload, and --busy-poll latency
if want offload && [ $LD_OK = 1 ] && [ $HAVE_IPERF = 1 ]; then
	log "bulk TCP with divert.OFFLOAD ($(elapsed) s)"
	sh "$LDT_ROOT/bench/offload_bench.sh" >>"$R" || note "bench/offload_bench.sh failed"
fi
if want busy_poll && [ $LD_OK = 1 ]; then
	log "idle latency with --busy-poll ($(elapsed) s)"
	sh "$LDT_ROOT/bench/busy_poll_bench.sh" >>"$R" || note "bench/busy_poll_bench.sh failed"
fi
# ------------------------------- 7. --workers N against N bare-C loops (issue 16)
if want workers && [ $LD_OK = 1 ]; then
	log "--workers scaling ($(elapsed) s)"
	sh "$LDT_ROOT/bench/workers_scaling.sh" >>"$R" || note "bench/workers_scaling.sh failed"
fi

# ------------------------------------------------------------------ report
put elapsed_s "$(elapsed)"
put loadavg_start "$LOAD0"
put loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
put runs "$RUNS"
put drain_n "$DRAIN_N"
put steady_s "$STEADY_S"
put heap_n "$HEAP_N"
put tcp_tool "$([ $HAVE_IPERF = 1 ] && echo iperf3 || echo tcpxfer)"
[ "${LDT_KEEP:-0}" = 1 ] && cp "$R" "$T/results.keep"
[ "${PROFILE:-0}" = 1 ] && [ $HAVE_PERF = 1 ] && export BENCH_PROFILE_DIR="$PROFDIR"
[ "${PROFILE:-0}" = 1 ] && [ $HAVE_PERF = 0 ] && note "PROFILE=1: perf is not installed (Debian package linux-perf)"
python3 "$LDT_ROOT/bench/report.py" "$R" "$T/notes" "$RESULTS" || fail "report"
log "done in $(elapsed) s; wrote $RESULTS"
exit 0

#!/bin/sh
# test_bench_readers.sh - the bare-C readers of the benchmark are correct
# programs: every queued packet gets exactly one accept (the receiver counts
# them all), their counters add up, SIGUSR1 prints them, and nfq_drain times
# a stopped reader emptying its queue. A "limit" that lost packets would make
# every ratio in bench/RESULTS.md meaningless.
LDT_AREA=benchrd
. "$(dirname "$0")/../lib/netns.sh"
require_root
require_tools udpsend udprecv
BB="$LDT_ROOT/build/bench"
for b in bare_nfq_simple bare_nfq_batched nfq_drain; do
	[ -x "$BB/$b" ] || skip "missing $BB/$b (run make)"
done

ns_create q; Q=$LDT_NS
ldt_tmpdir; T=$LDT_TMP
iptables_ns "$Q" -A INPUT -p udp --dport 9000 -j NFQUEUE --queue-num 3 || fail "iptables"

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | tail -n 1; }
eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }

for reader in bare_nfq_simple bare_nfq_batched; do
	bg_ns "$Q" "$BB/$reader" --queue 3 --maxlen 20000 >"$T/$reader.out" 2>"$T/$reader.err"
	P=$LDT_LAST_PID
	wait_for_queue "$Q" 3 5 || { cat "$T/$reader.err" >&2; fail "$reader did not bind queue 3"; }

	# 20000 datagrams as fast as possible: all arrive, once each
	rm -f "$T/ready"
	bg_ns "$Q" "$LDT_TOOLS/udprecv" --port 9000 --count 20000 --idle-ms 2000 \
		--time-limit 20 --ready "$T/ready" >"$T/recv"
	R=$LDT_LAST_PID
	wait_for_file "$T/ready" 5 || fail "udprecv did not start"
	ns_exec "$Q" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 20000 \
		--time-limit 10 >/dev/null || fail "udpsend"
	wait_for_exit "$R" 25 || fail "udprecv did not finish"
	cat "$T/recv"
	check "$reader: all 20000 arrive" eq "$(field "$T/recv" unique)" 20000
	check "$reader: no duplicates" eq "$(field "$T/recv" duplicates)" 0

	# a stopped reader, 5000 queued, drained: nfq_drain reports them
	kill -STOP "$P"
	ns_exec "$Q" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 5000 \
		--time-limit 10 >/dev/null || fail "udpsend"
	ns_exec "$Q" "$BB/nfq_drain" --pid "$P" --queue 3 --timeout 10 >"$T/drain" ||
		{ kill -CONT "$P"; fail "nfq_drain"; }
	cat "$T/drain"
	check "$reader: nfq_drain saw 5000 waiting" eq "$(field "$T/drain" drained)" 5000
	check "$reader: the queue is empty afterwards" eq "$(nfq_stats "$Q" 3 | awk '{ print $3 }')" 0

	kill -USR1 "$P"
	wait_for_output "$T/$reader.out" '"packets":' 5
	bg_stop "$P" TERM 10
	cat "$T/$reader.out"
	check "$reader: SIGUSR1 and exit both print counters" \
		eq "$(grep -c '"packets":' "$T/$reader.out")" 2
	# the 5000 drained packets found no receiver: they were accepted too
	check "$reader: counted 25000 packets" eq "$(field "$T/$reader.out" packets)" 25000
	if [ $reader = bare_nfq_batched ]; then
		check "$reader: batches < packets" \
			[ "$(field "$T/$reader.out" batches)" -lt 25000 ]
	else
		check "$reader: one batch per packet" eq "$(field "$T/$reader.out" batches)" 25000
	fi
done

"$BB/bare_nfq_batched" --queue x >/dev/null 2>&1; rc=$?
check "bad --queue exits 2" eq "$rc" 2
ldt_done

#!/bin/sh
# `luadivert run --busy-poll USEC` (issue 16): bad values stop it with exit
# status 2 and a message naming the option; with --busy-poll 50 every
# datagram arrives and gets exactly one verdict, over IPv4 and IPv6, and
# the worker still sleeps (and stops on SIGTERM) once the traffic is over.
# The latency it buys is measured by `make bench` (BENCH_ONLY=busy_poll).
LDT_AREA=busy-poll
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
POL="$LDT_ROOT/scripts/examples/pass_all.lua"

for bad in -1 abc 1000001 ''; do
	"$LUADIVERT" run "$POL" --busy-poll "$bad" >/dev/null 2>"$LDT_TMP/err"
	rc=$?
	check "--busy-poll '$bad': exit 2" [ "$rc" = 2 ]
	check "--busy-poll '$bad': the message names the option" grep -q -- "--busy-poll: '$bad' is not 0..1000000" "$LDT_TMP/err"
done

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
ip6tables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
ld_start "$NS" "$POL" --queue 0 --busy-poll 50
udp_run "$NS" 127.0.0.1 9000 2000 "$LDT_TMP/v4.json" --rate 20000
udp_run "$NS" ::1 9000 500 "$LDT_TMP/v6.json" --rate 2000
ld_stop
check "IPv4: all 2000 arrive" [ "$(json_get "$LDT_TMP/v4.json" unique)" = 2000 ]
check "IPv6 (sparse, 2000/s): all 500 arrive" [ "$(json_get "$LDT_TMP/v6.json" unique)" = 500 ]
check "exit status 0 after SIGTERM" [ "$LD_RC" = 0 ]
check "received 2500" [ "$(ld_counter received)" = 2500 ]
check "passed 2500" [ "$(ld_counter passed)" = 2500 ]

# it spins: with a 1 s window the worker is runnable (R) right after a
# datagram, not asleep in epoll_wait (S); after the window it sleeps again
wstate() { awk '{ print $3 }' "/proc/$(sed -n 's/.*(pid [0-9]*, worker \([0-9]*\)).*/\1/p' "$LD_LOG" | head -n 1)/stat"; }
_asleep() { [ "$(wstate)" = S ]; }
ld_start "$NS" "$POL" --queue 0 --busy-poll 1000000
wait_until 5 _asleep || fail "the worker never sleeps"
ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 1 --time-limit 5 >/dev/null
sleep 0.2
check "after a packet the worker spins (state $(wstate))" [ "$(wstate)" = R ]
check "and sleeps again after the window" wait_until 5 _asleep
ld_stop
check "exit status 0 after spinning" [ "$LD_RC" = 0 ]
ldt_done

#!/bin/sh
# ldt: serial (a held packet must still wait its 400 ms across a reload)
# Hot reload under traffic: 20 reloads between two policy versions while a
# sequenced UDP stream flows; every packet arrives exactly once and in order,
# both versions ran, the count kept by the policy survives every reload, and
# the daemon's verdicts equal the kernel's total. Then reloads that must be
# refused (syntax error, init error) leave the running policy in place and make
# `luadivert reload` fail; a changed module is picked up; --watch reloads on a
# file change; held packets keep their release time across a reload.
LDT_AREA=reload
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
P="$LDT_TMP/policy.lua"
POL="$LDT_ROOT/tests/policies"
N=20000
export LD_TEST_STATS="$LDT_TMP/count"

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
iptables_ns "$NS" -t mangle -A POSTROUTING -p udp --dport 9000 -m mark --mark 0x1

# reload runs where the daemon runs: it signals only the queue's lock holder
# in its own network namespace
reload() { ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" --timeout 10 >>"$LDT_TMP/reload.out" 2>&1; }

cp "$POL/reload_pass.lua" "$P"
ld_start "$NS" "$P" --queue 0
# the stream lasts 5 s; reload every 0.2 s, alternating versions
(
	sleep 0.5
	i=0
	while [ $i -lt 20 ]; do
		if [ $((i % 2)) = 0 ]; then cp "$POL/reload_mark.lua" "$P.new"; else cp "$POL/reload_pass.lua" "$P.new"; fi
		mv "$P.new" "$P"
		reload || echo "reload $i failed" >>"$LDT_TMP/reload.out"
		sleep 0.2
		i=$((i + 1))
	done
) &
RELOADER=$!
UDP_RECV_ARGS="--seqs $LDT_TMP/seqs" UDP_WAIT=5 udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/r.json" --rate 4000
wait $RELOADER
check "20 reloads succeeded" [ "$(grep -c '^reloaded ' "$LDT_TMP/reload.out")" = 20 ]
check "every sequence number arrived" [ "$(json_get "$LDT_TMP/r.json" unique)" = $N ]
check "none twice" [ "$(json_get "$LDT_TMP/r.json" duplicates)" = 0 ]
check "in order" [ "$(json_get "$LDT_TMP/r.json" out_of_order)" = 0 ]
MARKED=$(iptables_ns "$NS" -t mangle -L POSTROUTING -v -n -x | awk '/mark match 0x1/ { print $1 }')
check "both versions handled packets ($MARKED of $N marked)" sh -c '[ "$0" -gt 0 ] && [ "$0" -lt "$1" ]' "${MARKED:-0}" $N
K=$(nfq_stats "$NS" 0 | awk '{ print $8 }')
check "reload logged with file, hash and time" grep -qE "reloaded .*policy.lua \(fnv64 [0-9a-f]{16}\) in [0-9.]+ ms" "$LD_LOG"

# refused reloads keep the running policy
printf 'return function (pkt) return 1\n' >"$P"
check "reload of a syntax error fails" ns_exec "$NS" sh -c '! "$0" reload --pidfile "$1" --timeout 10 2>"$2"' \
	"$LUADIVERT" "$LD_PIDFILE" "$LDT_TMP/err1"
check "... and says so with file:line" grep -qE "policy.lua has errors, not reloading: .*policy.lua:2:" "$LDT_TMP/err1"
printf 'return { on_packet = function () return 1 end,\n init = function () error("bad init") end }\n' >"$P"
check "reload of a failing init fails" ns_exec "$NS" sh -c '! "$0" reload --pidfile "$1" --timeout 10 2>"$2"' \
	"$LUADIVERT" "$LD_PIDFILE" "$LDT_TMP/err2"
check "... with file:line" grep -qE "policy.lua:2: bad init" "$LDT_TMP/err2"
udp_run "$NS" 127.0.0.1 9000 1000 "$LDT_TMP/after.json" --rate 10000
check "the old policy still runs: 1000 more arrive" [ "$(json_get "$LDT_TMP/after.json" unique)" = 1000 ]
ld_stop
check "the policy's count survived every reload ($(cat "$LD_TEST_STATS"))" [ "$(cat "$LD_TEST_STATS")" = $((N + 1000)) ]
check "verdicts = received = the kernel's total ($K + 1000, $(ld_counter received))" \
	[ "$(ld_counter received)" = $((K + 1000)) ]
check "every packet got a verdict" [ "$(ld_counter received)" = "$(( $(ld_counter passed) + $(ld_counter dropped) ))" ]
check "counters: 20 reloads ($(ld_counter reloads))" [ "$(ld_counter reloads)" = 20 ]
check "counters: 2 refused ($(ld_counter reload_errors))" [ "$(ld_counter reload_errors)" = 2 ]

# a module the policy requires is read anew on reload; --watch reloads by itself
mkdir "$LDT_TMP/mod"
P2="$LDT_TMP/mod/policy.lua"
printf 'return { verdict = require("divert").PASS }\n' >"$LDT_TMP/mod/helper.lua"
printf 'local h = require "helper"\nreturn function () return h.verdict end\n' >"$P2"
ld_start "$NS" "$P2" --queue 0 --watch
udp_run "$NS" 127.0.0.1 9000 500 "$LDT_TMP/m1.json" --rate 10000
check "module version 1 passes" [ "$(json_get "$LDT_TMP/m1.json" unique)" = 500 ]
printf 'return { verdict = require("divert").DROP }\n' >"$LDT_TMP/mod/helper.new"
mv "$LDT_TMP/mod/helper.new" "$LDT_TMP/mod/helper.lua"
wait_for_output "$LD_LOG" 'reloaded .*mod/policy.lua' 5
check "--watch reloaded after the module changed" grep -q 'reloaded .*mod/policy.lua' "$LD_LOG"
udp_run "$NS" 127.0.0.1 9000 500 "$LDT_TMP/m2.json" --rate 10000
check "module version 2 drops" [ "$(json_get "$LDT_TMP/m2.json" received)" = 0 ]
ld_stop

# reloads never overlap: SIGHUPs that arrive while a (slow) reload runs
# become exactly one more reload
printf 'local d = require "divert"\nreturn { on_packet = function () return d.PASS end,\n init = function () local t = os.clock() + 0.3; while os.clock() < t do end end }\n' >"$P"
ld_start "$NS" "$P" --queue 0
for i in 1 2 3 4 5; do kill -HUP "$LD_PID"; sleep 0.02; done
wait_until 5 sh -c "[ \$(grep -c '^luadivert: reloaded' '$LD_LOG') -ge 2 ]"
sleep 1
ld_stop
check "5 SIGHUPs during a slow reload: 2 reloads ($(ld_counter reloads))" [ "$(ld_counter reloads)" = 2 ]

# held packets keep their release time across a reload: 20 datagrams held
# 400 ms by the running version, a reload to one that holds nothing (waited
# for: it loads in a new worker process, which takes a while under ASan),
# then 30 more
printf 'local d = require "divert"\nreturn function (pkt) pkt:hold(400); return d.PASS end\n' >"$P"
ld_start "$NS" "$P" --queue 0
rm -f "$LDT_TMP/h.json.ready"
bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9000 --count 50 --idle-ms 1500 --time-limit 20 \
	--ready "$LDT_TMP/h.json.ready" >"$LDT_TMP/h.json"
RP=$LDT_LAST_PID
wait_for_file "$LDT_TMP/h.json.ready" 5 || fail "udprecv did not start"
ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 20 --rate 200 \
	--time-limit 5 >/dev/null || fail "udpsend"
printf 'local d = require "divert"\nreturn function () return d.PASS end\n' >"$P"
ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" >/dev/null 2>&1 || fail "reload failed"
ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9000 --count 30 --rate 200 \
	--start-seq 20 --time-limit 5 >/dev/null || fail "udpsend"
wait_for_exit "$RP" 5
wait "$RP"
P50=$(json_get "$LDT_TMP/h.json" lat_us_p50)
ld_stop
check "all 50 held or passed packets arrive" [ "$(json_get "$LDT_TMP/h.json" unique)" = 50 ]
check "the first packets, held before the reload, still waited ~400 ms" \
	[ "$(json_get "$LDT_TMP/h.json" lat_us_max | cut -d. -f1)" -ge 390000 ]
check "packets after the reload were not held (median ${P50} us)" [ "$(echo "$P50" | cut -d. -f1)" -lt 390000 ]
ldt_done

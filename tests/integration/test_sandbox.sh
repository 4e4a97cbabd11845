#!/bin/sh
# The policy runs sandboxed (docs/sandbox.md), and contained:
#  1. in /proc the WORKER (the supervisor's child, the process that runs the
#     policy) is an unprivileged user with only CAP_NET_ADMIN and CAP_NET_RAW
#     (no CAP_SYS_ADMIN), NoNewPrivs 1 and Seccomp 2, while the supervisor
#     stays root and unfiltered; the policy's top level already ran as that
#     user (it reports the Uid line of its /proc/self/status); pass, drop, a
#     rewrite, a delay pipe and duplicates (raw socket) still work; after a
#     reload the new worker is sandboxed before the new version loads;
#  2. reading /etc/shadow, os.execute, opening a file for writing (in a
#     directory the user could write), os.exit and a table as an error object
#     are handler errors: the packet gets the default verdict (drop here), the
#     log says why, the worker keeps running (no restart); at exit the rules,
#     the pid file and the lock are gone (removed by the root supervisor);
#  3. a world-writable policy, a world- or group-writable module directory and
#     a policy owned by another user are refused with a message that says
#     why, at start and at a reload; --allow-insecure-policy lets it run;
#  4. a policy that allocates without bound stays under --memory-max (VmRSS
#     read from /proc), its allocations become counted handler errors, and
#     other traffic flows.
LDT_AREA=sandbox
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=20   # datagrams per port that must arrive
E=2    # datagrams per port whose handler raises (10 log lines: the log's burst)
POL=$LDT_ROOT/tests/policies

if id luadivert >/dev/null 2>&1; then WUSER=luadivert; else WUSER=nobody; fi
WUID=$(id -u "$WUSER")
# a directory the worker user may write by its permissions: only seccomp stops it
mkdir -m 1777 "$LDT_TMP/probe"
export SANDBOX_WRITE_PROBE="$LDT_TMP/probe/written"
export LUADIVERT_RUN_DIR="$LDT_TMP/run"

status_field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/${2:-$PID}/status"; }
# the worker: the supervisor's only child while no reload runs
worker_of() { pgrep -P "$1" | head -n 1; }
chains() {
	{ ns_exec "$NS" iptables-nft-save -t mangle; ns_exec "$NS" iptables-legacy-save -t mangle; } \
		2>/dev/null | grep -c '^:LUADIVERT-Q0 '
}
recv_start() {   # PORT COUNT [udprecv args]
	_p=$1; _c=$2; shift 2
	rm -f "$LDT_TMP/r$_p.ready"   # a port may be used twice: wait for this receiver
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port "$_p" --count "$_c" --idle-ms 1000 --time-limit 10 \
		--ready "$LDT_TMP/r$_p.ready" "$@" >"$LDT_TMP/r$_p.json"
	eval "RPID_$_p=\$LDT_LAST_PID"
	wait_for_file "$LDT_TMP/r$_p.ready" 5 || fail "udprecv $_p did not start"
}
send() {   # PORT COUNT
	ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port "$1" --count "$2" --rate 2000 \
		--size 100 --payload-byte 0x61 --time-limit 10 >/dev/null || fail "udpsend $1"
}
# recv_end PORT [WAIT_S [KEY]]: give it WAIT_S to reach its count, then stop it;
# print KEY (default received). Runs in $(...): a subshell cannot `wait` for the
# receiver, so it waits for the process to be gone (zombie counts as gone).
recv_end() {
	eval "_rp=\$RPID_$1"
	if ! wait_for_exit "$_rp" "${2:-0}"; then
		kill -TERM "$_rp" 2>/dev/null
		wait_for_exit "$_rp" 5
	fi
	json_get "$LDT_TMP/r$1.json" "${3:-received}"
}
# every datagram sent so far has reached the daemon (SIGUSR1 prints its counters)
received_at_least() {
	kill -USR1 "$SUP"
	sleep 0.2   # the supervisor prints the counters from its event loop
	grep 'received [0-9]' "$LD_LOG" | tail -n 1 |
		awk -v n="$1" '{ for (i = 1; i < NF; i++) if ($i == "received") ok = $(i+1) >= n }
			END { exit !ok }'
}

# --- 1 and 2: with rules (the supervisor removes them), default verdict drop
LD_LOG="$LDT_TMP/main.log"
bg_ns "$NS" "$LUADIVERT" run "$POL/sandbox_traffic.lua" --queue 0 --default-verdict drop \
	--filter 'udp and dst portrange 9101-9110' --hook output --pidfile "$LDT_TMP/main.pid" \
	>"$LD_LOG" 2>&1
SUP=$LDT_LAST_PID
# running: the worker told the supervisor it is ready, the queue is bound
sandboxed() { grep -q 'running .*sandbox_traffic.lua' "$LD_LOG"; }
if ! wait_until 10 sandboxed; then
	cat "$LD_LOG" >&2
	fail "luadivert did not start"
fi
PID=$(worker_of "$SUP")
[ -n "$PID" ] || fail "no worker process under the supervisor $SUP"
log "supervisor $SUP, worker $PID"
check "the supervisor stays root (uid $(status_field Uid "$SUP"))" [ "$(status_field Uid "$SUP")" = 0 ]
check "the supervisor has no seccomp filter" [ "$(status_field Seccomp "$SUP")" = 0 ]
check "the worker is another process than the supervisor" [ "$PID" != "$SUP" ]
CAPEFF=$(status_field CapEff) CAPPRM=$(status_field CapPrm)
log "uid $(status_field Uid) CapEff $CAPEFF CapPrm $CAPPRM"
check "uid is $WUSER's ($WUID), real and effective" \
	[ "$(awk '$1 == "Uid:" { print $2 $3 $4 $5 }' "/proc/$PID/status")" = "$WUID$WUID$WUID$WUID" ]
check "no CAP_SYS_ADMIN (bit 21) in CapEff $CAPEFF" [ $(( 0x$CAPEFF >> 21 & 1 )) = 0 ]
check "no CAP_SYS_ADMIN in CapPrm $CAPPRM" [ $(( 0x$CAPPRM >> 21 & 1 )) = 0 ]
check "CapEff is NET_ADMIN + NET_RAW only" [ "$CAPEFF" = 0000000000003000 ]
check "CapPrm is NET_ADMIN + NET_RAW only" [ "$CAPPRM" = 0000000000003000 ]
check "NoNewPrivs 1" [ "$(status_field NoNewPrivs)" = 1 ]
check "Seccomp 2" [ "$(status_field Seccomp)" = 2 ]
check "rules installed" [ "$(chains)" -ge 1 ]
# the policy's top level ran in the worker after the drop: it logs its own uid
TOPUID=$(sed -n 's/^ld-test-toplevel-uid: //p' "$LD_LOG" | head -n 1)
check "the policy's top level ran as $WUSER (uid '$TOPUID')" [ "$TOPUID" = "$WUID" ]

for p in 9102 9106 9107 9108 9109 9110; do recv_start $p 1; done
recv_start 9101 $N
recv_start 9103 $N --dump-first "$LDT_TMP/rewrite.hex"
recv_start 9104 $N
recv_start 9105 $((2 * N))
# the failing handlers first: the daemon must survive them for the rest to arrive
for p in 9106 9107 9108 9109 9110; do send $p $E; done
for p in 9101 9102 9103 9104 9105; do send $p $N; done
wait_until 15 received_at_least $((5 * E + 5 * N)) || fail "the daemon did not see every datagram"
check "alive after os.exit and the other errors" ldt_alive "$PID"
check "the same worker: no restart ($(worker_of "$SUP") = $PID)" [ "$(worker_of "$SUP")" = "$PID" ]
for p in 9101 9102 9103 9104 9105 9106 9107 9108 9109 9110; do
	case $p in 910[1345]) T=5 ;; *) T=0 ;; esac   # those reach their count; the others: now
	eval "GOT_$p=\$(recv_end $p $T); UNIQ_$p=\$(json_get '$LDT_TMP/r$p.json' unique)"
done
check "pass: $N of $N arrive ($UNIQ_9101)" [ "$UNIQ_9101" = $N ]
check "drop: none arrives ($GOT_9102)" [ "$GOT_9102" = 0 ]
check "rewrite: $N arrive ($UNIQ_9103)" [ "$UNIQ_9103" = $N ]
WANT=$(printf '42%.0s' $(seq 16 99))
check "rewrite: the receiver sees the new bytes" [ "$(cut -c33- "$LDT_TMP/rewrite.hex")" = "$WANT" ]
check "delay pipe: $N arrive ($UNIQ_9104)" [ "$UNIQ_9104" = $N ]
# a functional check with a margin (timing is for bench/): the 20 ms hold happened
P50_9104=$(json_get "$LDT_TMP/r9104.json" lat_us_p50)
check "delay pipe: held (median one-way delay $P50_9104 us >= 15 ms)" \
	[ "$(echo "$P50_9104" | cut -d. -f1)" -ge 15000 ]
check "duplicate: $((2 * N)) arrive, $N through the raw socket ($GOT_9105)" [ "$GOT_9105" = $((2 * N)) ]
for p in 9106 9107 9108 9109 9110; do
	eval "V=\$GOT_$p"
	check "port $p (handler error): the default verdict, none arrives ($V)" [ "$V" = 0 ]
done
check "/etc/shadow: refused" grep -q '/etc/shadow: Permission denied' "$LD_LOG"
check "os.execute: an error" grep -q 'os.execute is not allowed in a policy' "$LD_LOG"
check "open for writing: refused by seccomp" grep -q 'probe/written: Operation not permitted' "$LD_LOG"
check "open for writing: no file" [ ! -e "$SANDBOX_WRITE_PROBE" ]
check "os.exit: an error" grep -q 'os.exit is not allowed in a policy' "$LD_LOG"
check "a table error object is shown with its fields" grep -qE '\{(code=42, why=|why=.*code=42)' "$LD_LOG"
check "an error object whose __tostring raises: logged, no crash" \
	grep -q 'error object whose __tostring failed' "$LD_LOG"
check "no (null) in the log" sh -c "! grep -q '(null)' '$LD_LOG'"

# a reload: a new worker, sandboxed before it loads the new version (its top level
# logs its uid again), and the old one leaves
kill -HUP "$SUP"
reloaded() { grep -q 'reloaded .*sandbox_traffic.lua' "$LD_LOG"; }
check "SIGHUP: reloaded" wait_until 10 reloaded
NEWPID=$(worker_of "$SUP")
check "a new worker ($NEWPID, was $PID)" sh -c "[ -n '$NEWPID' ] && [ '$NEWPID' != '$PID' ]"
check "the new worker: Seccomp 2, NoNewPrivs 1, uid $WUID" \
	[ "$(status_field Seccomp "$NEWPID") $(status_field NoNewPrivs "$NEWPID") $(status_field Uid "$NEWPID")" = "2 1 $WUID" ]
check "the new version's top level ran as $WUSER too" \
	[ "$(grep -c "^ld-test-toplevel-uid: $WUID\$" "$LD_LOG")" = 2 ]
check "no top level ran as anyone else" [ "$(grep -c '^ld-test-toplevel-uid: ' "$LD_LOG")" = 2 ]

kill -TERM "$SUP"
wait_for_exit "$SUP" 10 || fail "luadivert did not stop"
wait "$SUP"; RC=$?
check "exit status 0 ($RC)" [ "$RC" = 0 ]
check "errors counted: $((5 * E))" [ "$(ld_counter errors)" = $((5 * E)) ]
check "rules removed at exit" [ "$(chains)" = 0 ]
check "pid file removed" [ ! -e "$LDT_TMP/main.pid" ]
check "lock file removed" [ -z "$(ls "$LUADIVERT_RUN_DIR" 2>/dev/null)" ]
check "the worker is gone too" sh -c "! kill -0 '$NEWPID' 2>/dev/null"

# --- 3: who may write the policy
mkdir "$LDT_TMP/ww"
cp "$LDT_ROOT/scripts/examples/pass_all.lua" "$LDT_TMP/ww/p.lua"
chmod 666 "$LDT_TMP/ww/p.lua"
"$LUADIVERT" check "$LDT_TMP/ww/p.lua" >"$LDT_TMP/c1.out" 2>&1; RC=$?
check "world-writable policy: check exits 1 ($RC)" [ "$RC" = 1 ]
check "... and says which file and why" grep -q "ww/p.lua: .*it is world-writable" "$LDT_TMP/c1.out"
ns_exec "$NS" "$LUADIVERT" run "$LDT_TMP/ww/p.lua" --queue 2 --no-rules \
	--pidfile "$LDT_TMP/ww.pid" >"$LDT_TMP/r1.out" 2>&1; RC=$?
check "world-writable policy: run exits 1 ($RC) and says why" \
	sh -c "[ $RC = 1 ] && grep -q 'it is world-writable.*--allow-insecure-policy' '$LDT_TMP/r1.out'"
check "--allow-insecure-policy: check accepts it" \
	"$LUADIVERT" check --allow-insecure-policy "$LDT_TMP/ww/p.lua"
iptables_ns "$NS" -A OUTPUT -p udp --dport 9301 -j NFQUEUE --queue-num 2
ld_start "$NS" "$LDT_TMP/ww/p.lua" --queue 2 --allow-insecure-policy
recv_start 9301 $N
send 9301 $N
check "--allow-insecure-policy: it runs, $N of $N arrive" [ "$(recv_end 9301 5 unique)" = $N ]
ld_stop
check "--allow-insecure-policy: received $N, exit 0" \
	sh -c "[ '$(ld_counter received)' = $N ] && [ '$LD_RC' = 0 ]"
chmod 644 "$LDT_TMP/ww/p.lua"
chmod 777 "$LDT_TMP/ww"
"$LUADIVERT" check "$LDT_TMP/ww/p.lua" >"$LDT_TMP/c2.out" 2>&1; RC=$?
check "world-writable module directory: refused ($RC), says why" \
	sh -c "[ $RC = 1 ] && grep -q 'module directory .*/ww: it is world-writable' '$LDT_TMP/c2.out'"
chmod 775 "$LDT_TMP/ww"
"$LUADIVERT" check "$LDT_TMP/ww/p.lua" >"$LDT_TMP/c3.out" 2>&1; RC=$?
check "group-writable module directory: refused ($RC), says why" \
	sh -c "[ $RC = 1 ] && grep -q 'module directory .*/ww: it is group-writable' '$LDT_TMP/c3.out'"
chmod 755 "$LDT_TMP/ww"
chown "$WUSER" "$LDT_TMP/ww/p.lua"
"$LUADIVERT" check "$LDT_TMP/ww/p.lua" >"$LDT_TMP/c4.out" 2>&1; RC=$?
check "policy owned by $WUSER: refused ($RC), says why" \
	sh -c "[ $RC = 1 ] && grep -q 'it is owned by $WUSER' '$LDT_TMP/c4.out'"
chown root "$LDT_TMP/ww/p.lua"
check "fixed: check accepts it" "$LUADIVERT" check "$LDT_TMP/ww/p.lua"
# the supervisor checks again at a reload: a file made world-writable since the
# start is refused, and the running worker keeps serving
ld_start "$NS" "$LDT_TMP/ww/p.lua" --queue 2
W0=$(worker_of "$LD_PID")
chmod 666 "$LDT_TMP/ww/p.lua"
kill -HUP "$LD_PID"
refused() { grep -q 'has errors, not reloading: .*ww/p.lua: .*it is world-writable' "$LD_LOG"; }
check "reload of a world-writable policy: refused, says why" wait_until 5 refused
recv_start 9301 $N
send 9301 $N
GOT=$(recv_end 9301 5 unique) W1=$(worker_of "$LD_PID")
check "... $N of $N arrive ($GOT)" [ "$GOT" = $N ]
check "... served by the old worker ($W1 = $W0)" [ "$W1" = "$W0" ]
ld_stop
check "... reload_errors 1, exit 0" sh -c "[ '$(ld_counter reload_errors)' = 1 ] && [ '$LD_RC' = 0 ]"
chmod 644 "$LDT_TMP/ww/p.lua"

# --- 4: unbounded allocation under --memory-max 32M
M=80   # MiB the policy tries to keep: more than the cap
iptables_ns "$NS" -A OUTPUT -p udp --dport 9201:9202 -j NFQUEUE --queue-num 1
# --handler-timeout: under ASan a batch of 64 zero-filled MiB takes longer than
# the default 500 ms, and the supervisor would (rightly) kill the worker as hung
ld_start "$NS" "$POL/sandbox_memory.lua" --queue 1 --memory-max 32M --default-verdict drop \
	--handler-timeout 10000
PID=$(worker_of "$LD_PID")   # the worker holds the Lua heap
[ -n "$PID" ] || fail "no worker process under $LD_PID"
RSS0=$(status_field VmRSS)
recv_start 9201 $M --idle-ms 4000   # slow under ASan: 1 MiB zero-filled per packet
recv_start 9202 $N
send 9201 $M
send 9202 $N
check "other traffic flows: $N of $N arrive" [ "$(recv_end 9202 5 unique)" = $N ]
KEPT=$(recv_end 9201)
RSS1=$(status_field VmRSS)
log "VmRSS ${RSS0} -> ${RSS1} kB, VmSize $(status_field VmSize) kB, $KEPT of $M allocations kept"
check "VmRSS grew by less than the cap + 16 MiB (${RSS0} -> ${RSS1} kB)" \
	[ $((RSS1 - RSS0)) -lt $(((32 + 16) * 1024)) ]
check "alive" ldt_alive "$PID"
ld_stop
ERRS=$(ld_counter errors)
check "allocations past the cap are handler errors: $ERRS + $KEPT kept = $M" \
	[ $((ERRS + KEPT)) = $M ]
check "at least $((M - 32)) errors ($ERRS)" [ "$ERRS" -ge $((M - 32)) ]
check "the log says not enough memory, at --memory-max" \
	grep -q 'not enough memory (the policy.s memory is at --memory-max)' "$LD_LOG"
check "exit status 0" [ "$LD_RC" = 0 ]
ldt_done

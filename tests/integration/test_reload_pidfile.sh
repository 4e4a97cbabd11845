#!/bin/sh
# Pid files (issue 14, item 9): `luadivert reload` signals only the process
# that holds the queue's lock in its network namespace. A pid file naming
# another process (a stale file whose pid was reused) is refused and that
# process lives on. Pid files are not written through a symlink; the default
# one is named after the network namespace, in a 0700 directory.
LDT_AREA=reload-pid
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
ldt_tmpdir
ns_create a; NS=$LDT_NS
POL=$LDT_ROOT/scripts/examples/pass_all.lua

# a stale pid file naming an unrelated process
bg_ns "$NS" sleep 30
SLEEPER=$LDT_LAST_PID
echo "$SLEEPER" >"$LDT_TMP/stale.pid"
ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LDT_TMP/stale.pid" --timeout 1 >"$LDT_TMP/stale.out" 2>&1
RC=$?
check "reload through a stale pid file fails (exit $RC)" [ "$RC" = 1 ]
check "... and says why" grep -q 'is not the luadivert on queue 0' "$LDT_TMP/stale.out"
check "the unrelated process was not signalled" ldt_alive "$SLEEPER"

# the same while a real instance runs on the queue
ld_start "$NS" "$POL" --queue 0
ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LDT_TMP/stale.pid" --timeout 1 >"$LDT_TMP/stale2.out" 2>&1
check "a pid that is not the lock holder is refused while one runs" [ $? = 1 ]
check "the unrelated process is still alive" ldt_alive "$SLEEPER"
check "the pid file names the queue" grep -qx 'queue 0' "$LD_PIDFILE"
check "reload through the instance's own pid file works" \
	ns_exec "$NS" "$LUADIVERT" reload --pidfile "$LD_PIDFILE" --timeout 10
check "... and not from another network namespace" \
	sh -c '! "$0" reload --pidfile "$1" --timeout 1 2>/dev/null' "$LUADIVERT" "$LD_PIDFILE"
ld_stop

# a symlink planted where the pid file goes is not followed
echo precious >"$LDT_TMP/victim"
ln -s "$LDT_TMP/victim" "$LDT_TMP/link.pid"
bg_ns "$NS" "$LUADIVERT" run "$POL" --no-rules --queue 1 --pidfile "$LDT_TMP/link.pid" \
	>"$LDT_TMP/link.log" 2>&1
LINKPID=$LDT_LAST_PID
wait_for_queue "$NS" 1 10 || fail "luadivert did not bind queue 1"
check "the symlink's target is untouched" grep -qx precious "$LDT_TMP/victim"
check "the refusal is logged" grep -q 'pid file .*link.pid' "$LDT_TMP/link.log"
bg_stop "$LINKPID"

# default pid file: per network namespace, in a 0700 directory
RUN=$LDT_TMP/run
LUADIVERT_RUN_DIR=$RUN
export LUADIVERT_RUN_DIR
INO=$(ns_exec "$NS" stat -L -c %i /proc/self/ns/net)
bg_ns "$NS" "$LUADIVERT" run "$POL" --no-rules --queue 2 >"$LDT_TMP/def.log" 2>&1
DEFPID=$LDT_LAST_PID
wait_for_queue "$NS" 2 10 || fail "luadivert did not bind queue 2"
wait_for_file "$RUN/net$INO-queue-2.pid" 5
check "default pid file is named after the namespace (net$INO-queue-2.pid)" \
	[ -f "$RUN/net$INO-queue-2.pid" ]
check "its directory is 0700" [ "$(stat -c %a "$RUN")" = 700 ]
check "reload finds it by queue number" ns_exec "$NS" "$LUADIVERT" reload --queue 2 --timeout 10
bg_stop "$DEFPID"
ldt_done

#!/bin/sh
# Bad input gets a clear error and the right exit status: bad arguments (2),
# policies that do not load (1, with file:line, before the queue is touched),
# `check` without root, and a queue already bound by another process (1, no hang).
LDT_AREA=eng-cli
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
ldt_tmpdir
T=$LDT_TMP

# expect STATUS PATTERN CMD...: CMD exits with STATUS and its stderr matches PATTERN
expect() {
	_want=$1 _pat=$2; shift 2
	"$@" >"$T/out" 2>"$T/err" </dev/null
	_rc=$?
	[ "$_rc" = "$_want" ] || { echo "  exit $_rc, wanted $_want: $*"; cat "$T/err"; return 1; }
	grep -qE -- "$_pat" "$T/err" "$T/out" || { echo "  no /$_pat/ in:"; cat "$T/err"; return 1; }
}

printf 'return function (pkt) return 1\n' >"$T/syntax.lua"
printf 'local x = nil\nx.y = 1\nreturn function () end\n' >"$T/runtime.lua"
printf 'return { on_packet = function () return 1 end,\n  init = function () error("no config") end }\n' >"$T/init.lua"
printf 'return 42\n' >"$T/number.lua"
printf 'local divert = require "divert"\nreturn function () return divert.PASS end\n' >"$T/good.lua"
printf 'return require "no_such_module_here"\n' >"$T/require.lua"

check "no command: usage, exit 2" expect 2 'usage: luadivert' "$LUADIVERT"
check "unknown command: exit 2" expect 2 "unknown command 'frobnicate'" "$LUADIVERT" frobnicate
check "--version" expect 0 '^luadivert [0-9]' "$LUADIVERT" --version
check "--help" expect 0 'commands:' "$LUADIVERT" --help
check "run --help" expect 0 'usage: luadivert run POLICY' "$LUADIVERT" run --help
check "run without POLICY: exit 2" expect 2 'missing POLICY' "$LUADIVERT" run
check "bad --queue: exit 2" expect 2 "--queue: 'x' is not 0..65535" "$LUADIVERT" run "$T/good.lua" --queue x
check "queue out of range: exit 2" expect 2 "--queue: '70000'" "$LUADIVERT" run "$T/good.lua" --queue 70000
check "bad --default-verdict: exit 2" expect 2 "--default-verdict: 'maybe'" \
	"$LUADIVERT" run "$T/good.lua" --default-verdict maybe
check "bad --handler-timeout: exit 2" expect 2 "--handler-timeout: '0' is not 1..3600000" \
	"$LUADIVERT" run "$T/good.lua" --handler-timeout 0
check "bad --max-restarts: exit 2" expect 2 "--max-restarts: 'x'" "$LUADIVERT" run "$T/good.lua" --max-restarts x
check "unknown option: exit 2" expect 2 "unknown option or missing value: '--bogus'" "$LUADIVERT" run "$T/good.lua" --bogus
check "two policies: exit 2" expect 2 'more than one POLICY' "$LUADIVERT" run "$T/good.lua" "$T/good.lua"

check "check: good policy, exit 0" expect 0 'good.lua: ok' "$LUADIVERT" check "$T/good.lua"
check "check: syntax error with file:line, exit 1" expect 1 'syntax.lua:2: .*expected' "$LUADIVERT" check "$T/syntax.lua"
check "check: runtime error at load, exit 1" expect 1 'runtime.lua:2: attempt to index' "$LUADIVERT" check "$T/runtime.lua"
check "check: init error, exit 1" expect 1 'init.lua:2: no config' "$LUADIVERT" check "$T/init.lua"
check "check: not a handler, exit 1" expect 1 'must return a function or a table' "$LUADIVERT" check "$T/number.lua"
check "check: missing module, exit 1" expect 1 "module 'no_such_module_here' not found" "$LUADIVERT" check "$T/require.lua"
check "check: missing file, exit 1" expect 1 'nothing.lua: No such file' "$LUADIVERT" check "$T/nothing.lua"

[ "$(id -u)" = 0 ] || { ldt_done; }
require_root
ns_create a; NS=$LDT_NS
# a policy with errors never touches the queue
check "run: syntax error, exit 1 with file:line" expect 1 'syntax.lua:2:' \
	ip netns exec "$NS" "$LUADIVERT" run "$T/syntax.lua" --queue 3 --pidfile "$T/p"
check "run: the queue was never bound" [ -z "$(nfq_stats "$NS" 3)" ]
check "run: init error, exit 1" expect 1 'init.lua:2: no config' \
	ip netns exec "$NS" "$LUADIVERT" run "$T/init.lua" --queue 3 --pidfile "$T/p"

ld_start "$NS" "$T/good.lua" --queue 3
check "second instance on a bound queue: clear error, exit 1" \
	expect 1 'queue 3 is already in use by luadivert pid [0-9]+' \
	timeout 10 ip netns exec "$NS" "$LUADIVERT" run "$T/good.lua" --queue 3 --pidfile "$T/p2"
ld_stop
check "first instance still exits cleanly" [ "$LD_RC" = 0 ]

# a queue held by a program that is not luadivert: the bind itself is refused
if [ -x "$LDT_ROOT/build/bench/bare_nfq_batched" ]; then
	bg_ns "$NS" "$LDT_ROOT/build/bench/bare_nfq_batched" --queue 4 >/dev/null 2>&1
	BARE=$LDT_LAST_PID
	wait_for_queue "$NS" 4 5 || fail "bare_nfq_batched did not bind queue 4"
	check "queue bound by another program: clear error, exit 1, no hang" \
		expect 1 'queue 4 is already bound by another process' \
		timeout 10 ip netns exec "$NS" "$LUADIVERT" run "$T/good.lua" --queue 4 --no-rules \
		--pidfile "$T/p3"
	kill -TERM "$BARE"
fi
ldt_done

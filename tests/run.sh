#!/bin/bash
# tests/run.sh - every test of luadivert, as `make test` runs it.
#
#   1. the shared ABI: generated Lua is current, C and LuaJIT agree on layouts;
#      C unit tests of the core (sanitized)
#   2. the Lua library: every module's selftest() and tests/lua/*_test.lua
#   3. integration tests (root, real traffic in namespaces they create)
#   4. the same integration tests again against an ASan+UBSan build
#   (between 2 and 3: each libFuzzer target for a few seconds)
#
# Integration tests mostly wait on traffic, so they run JOBS at a time
# (default 3); each has its own namespaces (named by pid) and its own run
# directory, so they cannot see each other. A test whose checks depend on
# timing (delay, rate, throughput) says so with a line "# ldt: serial" and
# runs afterwards, alone.
#
# Each test's output goes to build/test-logs/; a failing test's log is
# printed. The last line is "N passed, N failed, N skipped".
# TESTS="pattern" runs only the integration tests whose name contains it.
# JOBS=1 runs everything one at a time.
set -u
cd "$(dirname "$0")/.." || exit 1
LOGS=build/test-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
JOBS=${JOBS:-3}
# Debian's tools first (see tests/lib/netns.sh: a python3 shim is slow).
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
started=$(date +%s)

# run NAME CMD...: exit 0 pass, 77 skip, anything else fail. The outcome is
# printed and left in $LOGS/NAME.rc for the count at the end.
run() {
	local name=$1 log rc t0 dt base
	shift
	base="$LOGS/$(echo "$name" | tr '/ ' '__')"
	log="$base.log"
	t0=$(date +%s)
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	dt=$(( $(date +%s) - t0 ))
	echo "$rc $name" >"$base.rc"
	case $rc in
	0) echo "ok      $name (${dt}s)" ;;
	77) echo "skip    $name: $(grep -m1 SKIP "$log" || tail -n1 "$log")" ;;
	*) { echo "FAIL    $name (exit $rc, ${dt}s); last lines of $log:"
	     tail -n 25 "$log" | sed 's/^/        /'; } ;;
	esac
}

# run_bg NAME CMD...: run in the background, at most JOBS at once.
run_bg() {
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
		wait -n
	done
	run "$@" &
}

echo "== shared ABI"
run abi-generated make -s abi-check
run abi-layout luajit tests/lua/abi_test.lua
run "clang -Wall -Wextra -Werror" make -s clang-check

echo "== C unit tests (ASan+UBSan)"
for u in build/unit/*; do
	[ -x "$u" ] && run "$u" "$u"
done

echo "== Lua library"
for f in $(grep -l "^function M.selftest" lua/divert/*.lua lua/divert/*/*.lua 2>/dev/null); do
	mod=${f#lua/}
	mod=${mod%.lua}
	mod=${mod//\//.}
	run "selftest $mod" luajit -e \
		"package.path='./lua/?.lua;./lua/?/init.lua;'..package.path
		 require('$mod').selftest()"
done
for t in tests/lua/*_test.lua; do
	[ -e "$t" ] || continue
	[ "$t" = tests/lua/abi_test.lua ] && continue
	run "$t" luajit "$t"
done

# Fuzz targets (fuzz/*.c, `make fuzz` runs them longer): each for FUZZ_TEST_TIME
# seconds (default 5; ~7 s with start-up) from the seeds (../shared/pcaps), the inputs that once
# found a bug (fuzz/regress/) and what earlier runs kept (build/fuzz/corpus-*).
echo "== fuzzing (bounded)"
for f in build/fuzz/*_fuzz; do
	[ -f "$f" ] && [ -x "$f" ] || continue   # not the corpus-*_fuzz directories
	n=$(basename "$f")
	seeds=build/fuzz/seeds/$(echo "$n" | sed 's/_fuzz$//; s/_parse$//')
	mkdir -p "build/fuzz/corpus-$n" "$seeds"
	run_bg "fuzz $n" env LUADIVERT_FUZZ_DIR="$PWD/fuzz" "$f" -max_total_time="${FUZZ_TEST_TIME:-5}" \
		-close_fd_mask=2 -artifact_prefix="build/fuzz/crash-$n-" "build/fuzz/corpus-$n" \
		"$seeds" $(ls -d "fuzz/regress/$n" 2>/dev/null)
done


# integration LABEL BIN MODE: MODE parallel runs the tests without the serial
# marker JOBS at a time, MODE serial runs the marked ones one by one.
integration() {
	local label=$1 bin=$2 mode=$3 t rundir san=
	[ "$label" = asan ] && san=1
	for t in tests/integration/test_*.sh; do
		[ -e "$t" ] || continue
		case "$t" in *"${TESTS:-}"*) ;; *) continue ;; esac
		# The sanitizer pass only repeats tests that run the luadivert binary.
		if [ "$label" = asan ] && ! grep -qE '[$]LUADIVERT|ld_start' "$t"; then
			continue
		fi
		rundir="$LOGS/run.$label.$(basename "$t" .sh)"
		mkdir -p "$rundir"
		if grep -q '^# ldt: serial' "$t"; then
			[ "$mode" = serial ] || continue
			run "$label $t" env LUADIVERT="$bin" ${san:+LUADIVERT_SANITIZED=1} \
				LUADIVERT_RUN_DIR="$PWD/$rundir" sh "$t"
		else
			[ "$mode" = parallel ] || continue
			run_bg "$label $t" env LUADIVERT="$bin" ${san:+LUADIVERT_SANITIZED=1} \
				LUADIVERT_RUN_DIR="$PWD/$rundir" sh "$t"
		fi
	done
}

echo "== integration (plain build, then ASan+UBSan; $JOBS at a time, then the serial ones)"
if [ "$(id -u)" != 0 ]; then
	echo "skip    integration tests: they need root (network namespaces, firewall rules)"
	echo "77 integration" >"$LOGS/integration.rc"
else
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	export ASAN_OPTIONS UBSAN_OPTIONS
	integration plain "$PWD/luadivert" parallel
	integration asan "$PWD/build/luadivert-asan" parallel
	wait
	integration plain "$PWD/luadivert" serial
	integration asan "$PWD/build/luadivert-asan" serial
fi

passed=$(cat "$LOGS"/*.rc | grep -c '^0 ')
skipped=$(cat "$LOGS"/*.rc | grep -c '^77 ')
failures=$(cat "$LOGS"/*.rc | grep -vE '^(0|77) ' | cut -d' ' -f2-)
failed=0
[ -n "$failures" ] && failed=$(printf '%s\n' "$failures" | wc -l)
echo
[ -n "$failures" ] && printf 'failed:\n%s\n' "$failures"
echo "test time: $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

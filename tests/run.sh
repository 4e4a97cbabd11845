#!/bin/sh
# tests/run.sh - every test of luadivert, as `make test` runs it.
#
#   1. the shared ABI: generated Lua is current, C and LuaJIT agree on layouts;
#      C unit tests of the core (sanitized)
#   2. the Lua library: every module's selftest() and tests/lua/*_test.lua
#   3. integration tests (root, real traffic in namespaces they create)
#   4. the same integration tests again against an ASan+UBSan build
#   (between 2 and 3: each libFuzzer target for a few seconds)
#
# Each test's output goes to build/test-logs/; a failing test's log is
# printed. The last line is "N passed, N failed, N skipped".
# TESTS="pattern" runs only the integration tests whose name contains it.
set -u
cd "$(dirname "$0")/.." || exit 1
LOGS=build/test-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
passed=0 failed=0 skipped=0 failures=""
started=$(date +%s)

# run NAME CMD...: exit 0 pass, 77 skip, anything else fail.
run() {
	name=$1
	shift
	log="$LOGS/$(echo "$name" | tr '/ ' '__').log"
	t0=$(date +%s)
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	dt=$(( $(date +%s) - t0 ))
	case $rc in
	0) passed=$((passed + 1)); echo "ok      $name (${dt}s)" ;;
	77) skipped=$((skipped + 1)); echo "skip    $name: $(grep -m1 SKIP "$log" || tail -n1 "$log")" ;;
	*) failed=$((failed + 1)); failures="$failures $name"
	   echo "FAIL    $name (exit $rc, ${dt}s); last lines of $log:"
	   tail -n 25 "$log" | sed 's/^/        /' ;;
	esac
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
for f in $(grep -l "^function M.selftest" lua/divert/*.lua 2>/dev/null); do
	mod=$(basename "$f" .lua)
	run "selftest divert.$mod" luajit -e \
		"package.path='./lua/?.lua;./lua/?/init.lua;'..package.path
		 require('divert.$mod').selftest()"
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
	[ -x "$f" ] || continue
	n=$(basename "$f")
	seeds=build/fuzz/seeds/$(echo "$n" | sed 's/_fuzz$//; s/_parse$//')
	mkdir -p "build/fuzz/corpus-$n" "$seeds"
	run "fuzz $n" env LUADIVERT_FUZZ_DIR="$PWD/fuzz" "$f" -max_total_time="${FUZZ_TEST_TIME:-5}" \
		-close_fd_mask=2 -artifact_prefix="build/fuzz/crash-$n-" "build/fuzz/corpus-$n" \
		"$seeds" $(ls -d "fuzz/regress/$n" 2>/dev/null)
done

integration() {
	label=$1
	bin=$2
	for t in tests/integration/test_*.sh; do
		[ -e "$t" ] || continue
		case "$t" in *"${TESTS:-}"*) ;; *) continue ;; esac
		# The sanitizer pass only repeats tests that run the luadivert binary.
		if [ "$label" = asan ] && ! grep -qE '[$]LUADIVERT|ld_start' "$t"; then
			continue
		fi
		run "$label $t" env LUADIVERT="$bin" sh "$t"
	done
}

echo "== integration"
if [ "$(id -u)" != 0 ]; then
	echo "skip    integration tests: they need root (network namespaces, firewall rules)"
	skipped=$((skipped + 1))
else
	integration plain "$PWD/luadivert"
	echo "== integration, ASan+UBSan build"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	LUADIVERT_SANITIZED=1
	export ASAN_OPTIONS UBSAN_OPTIONS LUADIVERT_SANITIZED
	integration asan "$PWD/build/luadivert-asan"
fi

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "test time: $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

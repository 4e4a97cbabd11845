# shellcheck shell=sh
# tests/lib/rules.sh - helpers for the divert-rules tests (tests/integration/
# test_rules_*.sh). Source after tests/lib/netns.sh, then call ldt_tmpdir.
#
#   div_start NS drop|accept [ARGS...]  start a diverter in NS that gives every diverted
#                                  packet that verdict and logs it to DIV_LOG; ARGS are
#                                  `run` options (--queue --filter --hook --family
#                                  --fail-closed --backend --skip-mark); waits until the
#                                  rules are in. DIV_PID, DIV_OUT (its stdout+stderr).
#   div_try NS drop|accept [ARGS...]    run one in the foreground for at most 10 s
#                                  (for failures); DIV_RC, DIV_OUT.
#   div_stop [SIGNAL]              stop it (default TERM), wait; DIV_RC
#   div_count REGEX                lines of DIV_LOG matching REGEX (grep -E)
#   rules_cmd NS ARGS...           `luadivert rules ARGS` inside NS
#   list_has NS REGEX              `rules list` in NS has a line matching REGEX (grep -E)
#   ld_chains NS [nft|legacy]      number of LUADIVERT-Q chains in NS (both families)
#   udp_count NS DST PORT N [RECV_NS]   send N datagrams from NS, print how many arrived
#                                  (receiver in RECV_NS, default NS; bounded: 3 s)
#   tcp_ok NS DST PORT [RECV_NS]   true if a 64 KiB TCP transfer arrives intact (5 s)
#
# The diverter is `luadivert run tests/policies/rules_{drop,accept}.lua` once
# `luadivert run --help` knows --filter, and until then tests/tools/rules_driver
# (the same rules module driven by a small C NFQUEUE consumer). RULES_IMPL=driver
# or RULES_IMPL=luadivert forces one.

if [ -z "${RULES_IMPL:-}" ]; then
	if [ -x "$LUADIVERT" ] && "$LUADIVERT" run --help 2>&1 | grep -q -- '--filter'; then
		RULES_IMPL=luadivert
	else
		RULES_IMPL=driver
	fi
fi
DIV_N=0

# rules_cmd NS ARGS...: the `rules` subcommand (luadivert's when it has one).
rules_cmd() {
	_ns=$1; shift
	if [ "$RULES_IMPL" = luadivert ]; then
		ns_exec "$_ns" "$LUADIVERT" rules "$@"
	else
		ns_exec "$_ns" "$LDT_TOOLS/rules_driver" rules "$@"
	fi
}

div_start() {
	_ns=$1; _v=$2; shift 2
	DIV_N=$((DIV_N + 1))
	DIV_OUT="$LDT_TMP/div.$DIV_N.out"
	DIV_LOG="$LDT_TMP/div.$DIV_N.log"
	: >"$DIV_LOG"
	if [ "$RULES_IMPL" = luadivert ]; then
		RULES_LOG=$DIV_LOG bg_ns "$_ns" "$LUADIVERT" run \
			"$LDT_ROOT/tests/policies/rules_$_v.lua" --pidfile "$LDT_TMP/div.$DIV_N.pid" \
			"$@" >"$DIV_OUT" 2>&1
	else
		bg_ns "$_ns" "$LDT_TOOLS/rules_driver" run --consume "$_v" --log "$DIV_LOG" \
			--time-limit 120 "$@" >"$DIV_OUT" 2>&1
	fi
	DIV_PID=$LDT_LAST_PID
	DIV_NS=$_ns
	if ! wait_until 10 _div_ready; then
		cat "$DIV_OUT" >&2
		fail "diverter did not install its rules: $*"
	fi
}

# ready = it says its rules are in ("ready" from the driver, luadivert's
# "queue N: diverting ..." line), or it died
_div_ready() {
	ldt_alive "$DIV_PID" || return 0
	grep -qE '^ready|: diverting ' "$DIV_OUT"
}

div_try() {
	_ns=$1; _v=$2; shift 2
	DIV_N=$((DIV_N + 1))
	DIV_OUT="$LDT_TMP/div.$DIV_N.out"
	DIV_LOG="$LDT_TMP/div.$DIV_N.log"
	if [ "$RULES_IMPL" = luadivert ]; then
		RULES_LOG=$DIV_LOG ns_exec "$_ns" timeout 10 "$LUADIVERT" run \
			"$LDT_ROOT/tests/policies/rules_$_v.lua" --pidfile "$LDT_TMP/div.$DIV_N.pid" \
			"$@" >"$DIV_OUT" 2>&1
	else
		ns_exec "$_ns" timeout 10 "$LDT_TOOLS/rules_driver" run --consume "$_v" \
			--log "$DIV_LOG" --time-limit 5 "$@" >"$DIV_OUT" 2>&1
	fi
	DIV_RC=$?
}

div_stop() {
	kill "-${1:-TERM}" "$DIV_PID" 2>/dev/null
	wait_for_exit "$DIV_PID" 20 || { kill -KILL "$DIV_PID"; fail "diverter did not stop in 20 s"; }
	wait "$DIV_PID" 2>/dev/null
	DIV_RC=$?
}

div_count() {
	grep -cE "$1" "$DIV_LOG"
}

list_has() {
	rules_cmd "$1" list 2>&1 | grep -qE -- "$2"
}

# ld_chains NS [nft|legacy]: LUADIVERT-Q chains in NS, both families.
ld_chains() {
	_n=0
	for _b in ${2:-nft legacy}; do
		for _f in iptables ip6tables; do
			_c=$(ns_exec "$1" "$_f-$_b-save" 2>/dev/null | grep -c '^:LUADIVERT-Q')
			_n=$((_n + _c))
		done
	done
	echo "$_n"
}

# udp_count NS DST PORT N [RECV_NS]
udp_count() {
	_ns=$1; _dst=$2; _port=$3; _n=$4; _rns=${5:-$1}
	_o="$LDT_TMP/udp.$_port.$$.json"
	rm -f "$_o" "$_o.ready"
	bg_ns "$_rns" "$LDT_TOOLS/udprecv" --port "$_port" --count "$_n" --idle-ms 500 \
		--time-limit 3 --ready "$_o.ready" >"$_o"
	_rp=$LDT_LAST_PID
	wait_for_file "$_o.ready" 5 || fail "udprecv did not start"
	ns_exec "$_ns" "$LDT_TOOLS/udpsend" --dst "$_dst" --port "$_port" --count "$_n" \
		--rate 20000 --time-limit 5 >/dev/null || fail "udpsend failed"
	wait "$_rp"
	_r=$(sed -n 's/.*"unique":\([0-9]*\).*/\1/p' "$_o")
	echo "${_r:-0}"
}

# tcp_ok NS DST PORT [RECV_NS]
tcp_ok() {
	_ns=$1; _dst=$2; _port=$3; _rns=${4:-$1}
	_o="$LDT_TMP/tcp.$_port.$$"
	rm -f "$_o.ready"
	bg_ns "$_rns" "$LDT_TOOLS/tcpxfer" recv --port "$_port" --ready "$_o.ready" \
		--time-limit 5 >"$_o.recv" 2>/dev/null
	_rp=$LDT_LAST_PID
	wait_for_file "$_o.ready" 5 || fail "tcpxfer recv did not start"
	ns_exec "$_ns" "$LDT_TOOLS/tcpxfer" send --dst "$_dst" --port "$_port" --bytes 65536 \
		--time-limit 3 >"$_o.send" 2>/dev/null
	_src=$?
	wait_for_exit "$_rp" 5 || kill "$_rp" 2>/dev/null
	wait "$_rp" 2>/dev/null
	[ "$_src" = 0 ] || return 1
	_h1=$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$_o.send")
	_h2=$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$_o.recv")
	[ -n "$_h1" ] && [ "$_h1" = "$_h2" ]
}

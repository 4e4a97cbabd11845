# shellcheck shell=sh
# tests/lib/rules.sh - helpers for the divert-rules tests (tests/integration/
# test_rules_*.sh). Source after tests/lib/netns.sh, then call ldt_tmpdir.
# luadivert runs their policies with --no-sandbox: rules_log.lua appends to
# $RULES_LOG, a file the sandboxed worker may not open for writing, and these
# tests are about the rules.
#
#   rules_setup [TOOL...]          require root and the tools (udpsend, udprecv,
#                                  rules_driver, TOOL...), make LDT_TMP
#   div_start NS drop|accept [ARGS...]  start a diverter in NS that gives every diverted
#                                  packet that verdict and logs it to DIV_LOG; ARGS are
#                                  `run` options (--queue --filter --hook --family
#                                  --fail-closed --backend --skip-mark); waits until the
#                                  rules are in. DIV_PID, DIV_OUT (its stdout+stderr).
#   div_start_bg NS ...            the same without waiting for it
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
# or RULES_IMPL=luadivert forces one. Helper variables start with _rl_ (sh has
# no locals; a caller's variables must survive the helpers).

if [ -z "${RULES_IMPL:-}" ]; then
	if [ -x "$LUADIVERT" ] && "$LUADIVERT" run --help 2>&1 | grep -q -- '--filter'; then
		RULES_IMPL=luadivert
	else
		RULES_IMPL=driver
	fi
fi
DIV_N=0

rules_setup() {
	require_root
	require_tools udpsend udprecv rules_driver "$@"
	require_cmd iptables-nft-save ip6tables-nft-save iptables-nft-restore ip6tables-nft-restore
	ldt_tmpdir
}

# rules_cmd NS ARGS...: the `rules` subcommand (luadivert's when it has one).
rules_cmd() {
	_rl_ns=$1; shift
	if [ "$RULES_IMPL" = luadivert ]; then
		ns_exec "$_rl_ns" "$LUADIVERT" rules "$@"
	else
		ns_exec "$_rl_ns" "$LDT_TOOLS/rules_driver" rules "$@"
	fi
}

div_start() {
	_rl_ns=$1; _rl_v=$2; shift 2
	DIV_N=$((DIV_N + 1))
	DIV_OUT="$LDT_TMP/div.$DIV_N.out"
	DIV_LOG="$LDT_TMP/div.$DIV_N.log"
	: >"$DIV_LOG"
	if [ "$RULES_IMPL" = luadivert ]; then
		RULES_LOG=$DIV_LOG bg_ns "$_rl_ns" "$LUADIVERT" run \
			"$LDT_ROOT/tests/policies/rules_$_rl_v.lua" --no-sandbox --pidfile "$LDT_TMP/div.$DIV_N.pid" \
			"$@" >"$DIV_OUT" 2>&1
	else
		bg_ns "$_rl_ns" "$LDT_TOOLS/rules_driver" run --consume "$_rl_v" --log "$DIV_LOG" \
			--time-limit 120 "$@" >"$DIV_OUT" 2>&1
	fi
	DIV_PID=$LDT_LAST_PID
	DIV_NS=$_rl_ns
	[ -n "${DIV_NOWAIT:-}" ] && return 0
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

# div_start_bg: div_start without waiting (several starting at once).
div_start_bg() {
	DIV_NOWAIT=1
	div_start "$@"
	DIV_NOWAIT=
}

div_try() {
	_rl_ns=$1; _rl_v=$2; shift 2
	DIV_N=$((DIV_N + 1))
	DIV_OUT="$LDT_TMP/div.$DIV_N.out"
	DIV_LOG="$LDT_TMP/div.$DIV_N.log"
	if [ "$RULES_IMPL" = luadivert ]; then
		RULES_LOG=$DIV_LOG ns_exec "$_rl_ns" timeout 10 "$LUADIVERT" run \
			"$LDT_ROOT/tests/policies/rules_$_rl_v.lua" --no-sandbox --pidfile "$LDT_TMP/div.$DIV_N.pid" \
			"$@" >"$DIV_OUT" 2>&1
	else
		ns_exec "$_rl_ns" timeout 10 "$LDT_TOOLS/rules_driver" run --consume "$_rl_v" \
			--log "$DIV_LOG" --time-limit 5 "$@" >"$DIV_OUT" 2>&1
	fi
	DIV_RC=$?
}

div_stop() {
	bg_stop "$DIV_PID" "${1:-TERM}" 20
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
	_rl_n=0
	for _rl_b in ${2:-nft legacy}; do
		for _rl_f in iptables ip6tables; do
			_rl_c=$(ns_exec "$1" "$_rl_f-$_rl_b-save" 2>/dev/null | grep -c '^:LUADIVERT-Q')
			_rl_n=$((_rl_n + _rl_c))
		done
	done
	echo "$_rl_n"
}

# udp_count NS DST PORT N [RECV_NS]
udp_count() {
	_rl_ns=$1; _rl_dst=$2; _rl_port=$3; _rl_n=$4; _rl_rns=${5:-$1}
	_rl_o="$LDT_TMP/udp.$_rl_port.$$.json"
	rm -f "$_rl_o" "$_rl_o.ready"
	bg_ns "$_rl_rns" "$LDT_TOOLS/udprecv" --port "$_rl_port" --count "$_rl_n" --idle-ms 500 \
		--time-limit 3 --ready "$_rl_o.ready" >"$_rl_o"
	_rl_rp=$LDT_LAST_PID
	wait_for_file "$_rl_o.ready" 5 || fail "udprecv did not start"
	ns_exec "$_rl_ns" "$LDT_TOOLS/udpsend" --dst "$_rl_dst" --port "$_rl_port" --count "$_rl_n" \
		--rate 20000 --time-limit 5 >/dev/null || fail "udpsend failed"
	wait "$_rl_rp"
	_rl_r=$(sed -n 's/.*"unique":\([0-9]*\).*/\1/p' "$_rl_o")
	echo "${_rl_r:-0}"
}

# tcp_ok NS DST PORT [RECV_NS]
tcp_ok() {
	_rl_ns=$1; _rl_dst=$2; _rl_port=$3; _rl_rns=${4:-$1}
	_rl_o="$LDT_TMP/tcp.$_rl_port.$$"
	rm -f "$_rl_o.ready"
	bg_ns "$_rl_rns" "$LDT_TOOLS/tcpxfer" recv --port "$_rl_port" --ready "$_rl_o.ready" \
		--time-limit 5 >"$_rl_o.recv" 2>/dev/null
	_rl_rp=$LDT_LAST_PID
	wait_for_file "$_rl_o.ready" 5 || fail "tcpxfer recv did not start"
	ns_exec "$_rl_ns" "$LDT_TOOLS/tcpxfer" send --dst "$_rl_dst" --port "$_rl_port" --bytes 65536 \
		--time-limit 3 >"$_rl_o.send" 2>/dev/null
	_rl_src=$?
	wait_for_exit "$_rl_rp" 5 || kill "$_rl_rp" 2>/dev/null
	wait "$_rl_rp" 2>/dev/null
	[ "$_rl_src" = 0 ] || return 1
	_rl_h1=$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$_rl_o.send")
	_rl_h2=$(sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' "$_rl_o.recv")
	[ -n "$_rl_h1" ] && [ "$_rl_h1" = "$_rl_h2" ]
}

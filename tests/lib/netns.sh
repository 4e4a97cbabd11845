# shellcheck shell=sh
# tests/lib/netns.sh - helpers for luadivert integration tests and benchmarks.
#
# Source it from a test (POSIX sh or bash):
#
#     LDT_AREA=engine            # optional, names the namespaces
#     . "$(dirname "$0")/../lib/netns.sh"
#     require_root
#     ns_create "$(ns_name a)"; A=$LDT_NS
#
# Network safety: every namespace made here is named ldt-<area>-<pid>-<name>,
# every firewall command goes through iptables_ns/ip6tables_ns, which refuse
# a namespace that this test did not create, and nothing here ever runs
# iptables, ip6tables or nft in the root namespace. The EXIT/INT/TERM trap
# kills the background processes started with bg_run and every process left
# in our namespaces, then deletes the namespaces and temporary files, also
# when the test fails half way.
#
# Exit status convention: 0 pass, 1 fail, 77 skip (see pass/fail/skip).

LDT_AREA=${LDT_AREA:-$(basename "$0" .sh | sed 's/^test_//; s/[^A-Za-z0-9]/-/g' | cut -c1-16)}
LDT_PREFIX="ldt-${LDT_AREA}-$$-"
LDT_NAMESPACES=""     # namespaces to delete (space separated)
LDT_PIDS=""           # background processes to stop
LDT_TMPDIRS=""        # directories to remove
LDT_LAST_PID=""       # pid of the last bg_run
LDT_NS=""             # name of the last namespace made by ns_create

# Repository root: the caller may set it; else two levels above the test.
if [ -z "${LDT_ROOT:-}" ]; then
	LDT_ROOT=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)
	[ -f "$LDT_ROOT/tests/lib/netns.sh" ] || LDT_ROOT=$(pwd)
fi
LDT_TOOLS=${LDT_TOOLS:-$LDT_ROOT/build/tools}
LUADIVERT=${LUADIVERT:-$LDT_ROOT/luadivert}
LDT_IPTABLES=${LDT_IPTABLES:-iptables}      # or iptables-legacy
LDT_IP6TABLES=${LDT_IP6TABLES:-ip6tables}   # or ip6tables-legacy
# Debian's own tools first: a version-manager shim in front of python3 (pyenv)
# costs a dozen processes per call, which adds up to minutes in a test run.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# ---------------------------------------------------------------- reporting

log()  { printf '%s: %s\n' "$LDT_AREA" "$*" >&2; }
pass() { printf 'PASS: %s\n' "${*:-$LDT_AREA}"; exit 0; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*" >&2; exit 77; }

# check DESCRIPTION CMD...: run CMD, print "ok"/"not ok" and count failures
# in LDT_FAILED (finish with `ldt_done`).
LDT_FAILED=0
check() {
	_ldt_d=$1; shift
	if "$@"; then
		printf 'ok - %s\n' "$_ldt_d"
	else
		printf 'not ok - %s\n' "$_ldt_d"
		LDT_FAILED=$((LDT_FAILED + 1))
	fi
}
# ldt_done: exit 0 if every check passed, else 1.
ldt_done() {
	[ "$LDT_FAILED" -eq 0 ] || fail "$LDT_FAILED check(s) failed"
	pass "$LDT_AREA"
}

require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	command -v ip >/dev/null 2>&1 || skip "needs iproute2 (ip)"
}

# require_cmd CMD...: skip unless every CMD is on PATH.
require_cmd() {
	for _ldt_c in "$@"; do
		command -v "$_ldt_c" >/dev/null 2>&1 || skip "needs $_ldt_c"
	done
}

# require_tools NAME...: skip unless build/tools/NAME exists (run make).
require_tools() {
	for _ldt_c in "$@"; do
		[ -x "$LDT_TOOLS/$_ldt_c" ] || skip "missing $LDT_TOOLS/$_ldt_c (run make)"
	done
}

# ------------------------------------------------------------------ cleanup

ldt_cleanup() {
	_ldt_rc=$?
	trap - EXIT INT TERM
	for _ldt_p in $LDT_PIDS; do
		kill -TERM "$_ldt_p" 2>/dev/null
	done
	# give them up to 2 s to exit, then force
	_ldt_i=0
	while [ $_ldt_i -lt 20 ]; do
		_ldt_alive=""
		for _ldt_p in $LDT_PIDS; do
			ldt_alive "$_ldt_p" && _ldt_alive="$_ldt_alive $_ldt_p"
		done
		[ -z "$_ldt_alive" ] && break
		sleep 0.1
		_ldt_i=$((_ldt_i + 1))
	done
	for _ldt_p in $LDT_PIDS; do
		kill -KILL "$_ldt_p" 2>/dev/null
	done
	for _ldt_n in $LDT_NAMESPACES; do
		# processes still inside our namespace were started by this test
		for _ldt_p in $(ip netns pids "$_ldt_n" 2>/dev/null); do
			kill -KILL "$_ldt_p" 2>/dev/null
		done
		ip netns del "$_ldt_n" 2>/dev/null
	done
	if [ "${LDT_KEEP:-0}" != 1 ]; then
		for _ldt_d in $LDT_TMPDIRS; do
			rm -rf "$_ldt_d"
		done
	elif [ -n "$LDT_TMPDIRS" ]; then
		log "kept $LDT_TMPDIRS"
	fi
	exit $_ldt_rc
}
trap ldt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ldt_tmpdir: make a temporary directory, removed at exit; sets LDT_TMP.
ldt_tmpdir() {
	LDT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/${LDT_PREFIX}XXXXXX") || fail "mktemp"
	# readable by the sandboxed daemon (it reloads policies as an unprivileged user)
	chmod 755 "$LDT_TMP" || fail "chmod $LDT_TMP"
	LDT_TMPDIRS="$LDT_TMPDIRS $LDT_TMP"
}

# bg_run CMD...: start CMD (a program, not a shell function) in the
# background, remember it for cleanup; its pid is in LDT_LAST_PID.
# Redirect as usual: bg_run cmd >out 2>&1
bg_run() {
	"$@" &
	LDT_LAST_PID=$!
	LDT_PIDS="$LDT_PIDS $LDT_LAST_PID"
}

# bg_ns NS CMD...: bg_run CMD inside namespace NS (ip netns exec execs CMD,
# so LDT_LAST_PID is CMD's own pid and signals reach it).
bg_ns() {
	ns_is_ours "$1" || fail "bg_ns: $1 is not a namespace of this test"
	bg_run ip netns exec "$@"
}

# ldt_alive PID: true while PID runs (a finished child that was not yet
# waited for is a zombie and counts as gone).
ldt_alive() {
	[ -r "/proc/$1/stat" ] || return 1
	_ldt_st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$_ldt_st" ] && [ "$_ldt_st" != Z ]
}

# bg_stop PID [SIGNAL] [TIMEOUT_S]: signal PID (default TERM), wait for it to
# exit (default 5 s, then KILL). Returns its exit status (if it is our child).
bg_stop() {
	kill "-${2:-TERM}" "$1" 2>/dev/null
	wait_until "${3:-5}" _ldt_gone "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# --------------------------------------------------------------- namespaces

# ns_name SHORT: the full name for a namespace of this test (prints it).
ns_name() { printf '%s%s\n' "$LDT_PREFIX" "$1"; }

# ns_is_ours NS: true if NS was made by this test.
ns_is_ours() {
	case "$1" in "$LDT_PREFIX"*) ;; *) return 1 ;; esac
	case " $LDT_NAMESPACES " in *" $1 "*) return 0 ;; esac
	return 1
}

# ns_create NAME|SHORT: make a namespace (SHORT gets the test prefix),
# register it for deletion, bring lo up. Sets LDT_NS to the full name.
ns_create() {
	case "$1" in "$LDT_PREFIX"*) _ldt_n=$1 ;; *) _ldt_n="$LDT_PREFIX$1" ;; esac
	ip netns add "$_ldt_n" || fail "ip netns add $_ldt_n"
	LDT_NAMESPACES="$LDT_NAMESPACES $_ldt_n"
	ip -n "$_ldt_n" link set lo up || fail "lo up in $_ldt_n"
	# no IPv6 duplicate address detection delay on our own links
	ip netns exec "$_ldt_n" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1
	LDT_NS=$_ldt_n
}

# ns_exec NS CMD...: run CMD inside NS (which must be ours).
ns_exec() {
	ns_is_ours "$1" || fail "ns_exec: $1 is not a namespace of this test"
	_ldt_n=$1; shift
	ip netns exec "$_ldt_n" "$@"
}

# veth_pair NS1 NS2 [IDX]: a veth link between NS1 and NS2, named v<IDX>a
# (in NS1) and v<IDX>b (in NS2), addresses 198.18.<IDX>.1/24 and .2/24 and
# fd00:198:18:<IDX>::1/64 and ::2/64 (nodad). IDX defaults to 0, 0..255.
# Sets VETH_A/VETH_B (names), ADDR_A/ADDR_B, ADDR6_A/ADDR6_B.
veth_pair() {
	ns_is_ours "$1" && ns_is_ours "$2" || fail "veth_pair: not our namespaces"
	_ldt_x=${3:-0}
	VETH_A="v${_ldt_x}a"; VETH_B="v${_ldt_x}b"
	ADDR_A="198.18.$_ldt_x.1"; ADDR_B="198.18.$_ldt_x.2"
	ADDR6_A="fd00:198:18:$_ldt_x::1"; ADDR6_B="fd00:198:18:$_ldt_x::2"
	# created directly in NS1 with the peer in NS2: never in the root namespace
	ip -n "$1" link add "$VETH_A" type veth peer name "$VETH_B" netns "$2" \
		|| fail "veth $VETH_A/$VETH_B"
	ip -n "$1" addr add "$ADDR_A/24" dev "$VETH_A" || fail "addr $ADDR_A"
	ip -n "$2" addr add "$ADDR_B/24" dev "$VETH_B" || fail "addr $ADDR_B"
	ip -n "$1" -6 addr add "$ADDR6_A/64" dev "$VETH_A" nodad || fail "addr $ADDR6_A"
	ip -n "$2" -6 addr add "$ADDR6_B/64" dev "$VETH_B" nodad || fail "addr $ADDR6_B"
	ip -n "$1" link set "$VETH_A" up || fail "up $VETH_A"
	ip -n "$2" link set "$VETH_B" up || fail "up $VETH_B"
	# static neighbours: no ARP/ND round (a fresh link loses the first
	# datagrams while IPv6 neighbour discovery retries)
	_ldt_ma=$(ip netns exec "$1" cat "/sys/class/net/$VETH_A/address") || fail "mac $VETH_A"
	_ldt_mb=$(ip netns exec "$2" cat "/sys/class/net/$VETH_B/address") || fail "mac $VETH_B"
	ip -n "$1" neigh replace "$ADDR_B" lladdr "$_ldt_mb" dev "$VETH_A" nud permanent &&
	ip -n "$1" neigh replace "$ADDR6_B" lladdr "$_ldt_mb" dev "$VETH_A" nud permanent &&
	ip -n "$2" neigh replace "$ADDR_A" lladdr "$_ldt_ma" dev "$VETH_B" nud permanent &&
	ip -n "$2" neigh replace "$ADDR6_A" lladdr "$_ldt_ma" dev "$VETH_B" nud permanent ||
		fail "static neighbours on $VETH_A/$VETH_B"
}

# ------------------------------------------------------------------ firewall

# iptables_ns NS ARGS...: iptables inside NS (ours only; never the root ns).
iptables_ns() {
	ns_is_ours "$1" || fail "iptables_ns: refusing namespace '$1' (not made by this test)"
	_ldt_n=$1; shift
	ip netns exec "$_ldt_n" "$LDT_IPTABLES" -w "$@"
}

# ip6tables_ns NS ARGS...: same for IPv6.
ip6tables_ns() {
	ns_is_ours "$1" || fail "ip6tables_ns: refusing namespace '$1' (not made by this test)"
	_ldt_n=$1; shift
	ip netns exec "$_ldt_n" "$LDT_IP6TABLES" -w "$@"
}

# nfq_stats NS QUEUE: the /proc/net/netfilter/nfnetlink_queue line of QUEUE
# as seen from inside NS (each namespace has its own queues):
#   queue portid waiting copy_mode copy_range queue_dropped user_dropped id_seq 1
nfq_stats() {
	ns_exec "$1" awk -v q="$2" '$1 == q' /proc/net/netfilter/nfnetlink_queue
}

# ---------------------------------------------------------------- waiting
# Every wait is bounded; each returns 0 when ready and 1 on timeout.

# wait_until TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds.
# (the helpers name their variables _ldt_* and _wu_*, so that a caller's loop
# counter survives them; wait_until's own are also local (dash and bash have
# local), so that a condition that calls wait_until itself cannot end this
# loop early)
wait_until() {
	local _wu_t _wu_i
	_wu_t=$(( $1 * 20 )); shift; _wu_i=0
	while ! "$@" >/dev/null 2>&1; do
		_wu_i=$((_wu_i + 1))
		[ $_wu_i -ge $_wu_t ] && return 1
		sleep 0.05
	done
	return 0
}

# wait_for_file PATH [TIMEOUT_S]: until PATH exists and is not empty.
wait_for_file() { wait_until "${2:-5}" test -s "$1"; }

# wait_for_output FILE PATTERN [TIMEOUT_S]: until FILE contains PATTERN (grep -E).
wait_for_output() { wait_until "${3:-5}" grep -qE "$2" "$1"; }

_ldt_port_bound() { ip netns exec "$1" ss -Hln"$2" "sport = :$3" | grep -q .; }
# wait_for_port NS udp|tcp PORT [TIMEOUT_S]: until something listens there.
wait_for_port() {
	case "$2" in udp) _ldt_pf=u ;; tcp) _ldt_pf=t ;; *) fail "wait_for_port: udp|tcp" ;; esac
	wait_until "${4:-5}" _ldt_port_bound "$1" "$_ldt_pf" "$3"
}

_ldt_nfq_bound() { ip netns exec "$1" awk -v q="$2" '$1 == q { f = 1 } END { exit !f }' \
	/proc/net/netfilter/nfnetlink_queue; }
# wait_for_queue NS QUEUE [TIMEOUT_S]: until a process has bound NFQUEUE QUEUE in NS.
wait_for_queue() { wait_until "${3:-5}" _ldt_nfq_bound "$1" "$2"; }

_ldt_gone() { ! ldt_alive "$1"; }
# wait_for_exit PID [TIMEOUT_S]: until PID has exited.
wait_for_exit() { wait_until "${2:-5}" _ldt_gone "$1"; }

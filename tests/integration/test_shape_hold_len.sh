#!/bin/sh
# Issue 14 item 5: a held packet whose descriptor claims a changed length
# beyond 65535 bytes (and beyond its buffer) gets the same length check as
# an immediate one. Before, the copy of its bytes overflowed the hold store
# (with --hold-copies 1, past the end of the mapping: a crash). Now the edit
# is refused and counted, the original arrives intact, at input (kept in
# the kernel queue) and at output (taken over by the core).
LDT_AREA=shp-holdlen
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=20
POL="$LDT_ROOT/tests/policies/hold_bad_len.lua"

for hook in INPUT OUTPUT; do
	iptables_ns "$NS" -F INPUT
	iptables_ns "$NS" -F OUTPUT
	iptables_ns "$NS" -A $hook -p udp --dport 9800 -m mark ! --mark 0x4c440000/0x4c440000 \
		-j NFQUEUE --queue-num 0
	ld_start "$NS" "$POL" --queue 0 --hold-copies 1
	udp_run "$NS" 127.0.0.1 9800 $N "$LDT_TMP/$hook.json" --rate 200 --size 200
	ld_stop
	log "$hook: $(cat "$LDT_TMP/$hook.json"); $(grep 'received [0-9]' "$LD_LOG" | cut -c1-160)"
	check "$hook: luadivert exits 0 (status $LD_RC)" [ "$LD_RC" = 0 ]
	check "$hook: all $N arrive" [ "$(json_get "$LDT_TMP/$hook.json" unique)" = $N ]
	check "$hook: with their original length" [ "$(json_get "$LDT_TMP/$hook.json" bytes)" = $((N * 200)) ]
	check "$hook: every refused edit counted as an error" [ "$(ld_counter errors)" = $N ]
	check "$hook: no edit counted as made" [ "$(ld_counter modified)" = 0 ]
	check "$hook: the refusal is logged" grep -q "modified bytes not sent (longer than its buffer)" "$LD_LOG"
done
ldt_done

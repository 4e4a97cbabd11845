#!/bin/sh
# Duplicates through shape.pipe on real traffic: duplicate = 1 makes every
# datagram arrive twice, the copy is injected through the raw socket with
# the skip mark and is NOT queued again (the daemon sees each datagram
# once: no loop), for IPv4 and IPv6, also when the packet is held (delay);
# duplicate = 0.3 duplicates about 30%.
LDT_AREA=shp-dup
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
shape_policy "$LDT_TMP/dup.lua" "duplicate = 1, seed = 1"
shape_policy "$LDT_TMP/dupdelay.lua" "duplicate = 1, delay = 20, seed = 1"
shape_policy "$LDT_TMP/dup30.lua" "duplicate = 0.3, seed = 2"
N=1000
MARK=0x4c440000

# The rule RETURNs on the skip mark, as the rules luadivert installs do.
for t in iptables_ns ip6tables_ns; do
	$t "$NS" -A OUTPUT -p udp --dport 9500 -m mark --mark $MARK/$MARK -j RETURN
	$t "$NS" -A OUTPUT -p udp --dport 9500 -j NFQUEUE --queue-num 0
done

ld_start "$NS" "$LDT_TMP/dup.lua" --queue 0
udp_run "$NS" 127.0.0.1 9500 $((2 * N)) "$LDT_TMP/d4.json" --count $N --rate 2000
udp_run "$NS" ::1 9500 $((2 * N)) "$LDT_TMP/d6.json" --count $N --rate 2000
ld_stop
if [ "$(ld_counter injected)" = 0 ] && [ "$(ld_counter inject_errors)" = 0 ]; then
	skip "this luadivert does not inject duplicates yet (injected 0)"
fi
log "duplicate = 1: IPv4 $(cat "$LDT_TMP/d4.json")"
check "IPv4: every datagram arrives" [ "$(json_get "$LDT_TMP/d4.json" unique)" = $N ]
check "IPv4: every datagram arrives twice" [ "$(json_get "$LDT_TMP/d4.json" duplicates)" = $N ]
check "IPv6: every datagram arrives twice" [ "$(json_get "$LDT_TMP/d6.json" duplicates)" = $N ]
check "no loop: the daemon received each datagram once ($(ld_counter received))" [ "$(ld_counter received)" = $((2 * N)) ]
check "the daemon injected $((2 * N)) copies" [ "$(ld_counter injected)" = $((2 * N)) ]
check "no injection errors" [ "$(ld_counter inject_errors)" = 0 ]

ld_start "$NS" "$LDT_TMP/dupdelay.lua" --queue 0
udp_run "$NS" 127.0.0.1 9500 $((2 * N)) "$LDT_TMP/dd.json" --count $N --rate 2000
ld_stop
check "held packets: their copies are injected at release, twice each" \
	[ "$(json_get "$LDT_TMP/dd.json" duplicates)" = $N ]
check "held packets: the copies wait too (one-way p50 >= 20 ms)" \
	within "$(json_get "$LDT_TMP/dd.json" lat_us_p50)" 20000 60000

ld_start "$NS" "$LDT_TMP/dup30.lua" --queue 0
udp_run "$NS" 127.0.0.1 9500 $((2 * N)) "$LDT_TMP/d30.json" --count $N --rate 2000
ld_stop
D=$(json_get "$LDT_TMP/d30.json" duplicates)
# 30% of 1000: sigma 14.5, 4 sigma = 58
check "duplicate = 0.3: $D of $N duplicated, within 300 +- 58" within "$D" 242 358
ldt_done

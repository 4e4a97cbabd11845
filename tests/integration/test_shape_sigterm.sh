#!/bin/sh
# Held packets on SIGTERM: with a 3 s delay, SIGTERM while every datagram
# is held releases them all at once (--held-on-exit release, the default):
# all arrive, well before their 3 s; with --held-on-exit drop none arrive.
# Either way every packet got exactly one verdict and the daemon exits 0.
LDT_AREA=shp-term
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
. "$(dirname "$0")/../lib/shape.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=300
shape_policy "$LDT_TMP/hold.lua" "delay = 3000, seed = 1"
iptables_ns "$NS" -A OUTPUT -p udp --dport 9600 -j NFQUEUE --queue-num 0

run() {  # run NAME [luadivert args]: send N in 0.3 s, SIGTERM at ~1 s
	_name=$1; shift
	ld_start "$NS" "$LDT_TMP/hold.lua" --queue 0 "$@"
	rm -f "$LDT_TMP/$_name.ready"
	bg_ns "$NS" "$LDT_TOOLS/udprecv" --port 9600 --count $N --idle-ms 1500 --time-limit 20 \
		--ready "$LDT_TMP/$_name.ready" >"$LDT_TMP/$_name.json"
	_rp=$LDT_LAST_PID
	wait_for_file "$LDT_TMP/$_name.ready" 5 || fail "udprecv did not start"
	ns_exec "$NS" "$LDT_TOOLS/udpsend" --dst 127.0.0.1 --port 9600 --count $N --rate 1000 \
		--time-limit 10 >/dev/null || fail "udpsend"
	sleep 0.7
	K=$(nfq_stats "$NS" 0)
	ld_stop TERM
	wait "$_rp"
}

run release
log "release: kernel queue before SIGTERM: $K; receiver: $(cat "$LDT_TMP/release.json")"
# Sent by this host, at output: held packets are taken over (copied, the
# original dropped), so they wait in luadivert rather than in the kernel
# queue (docs/shaping.md, "Shaping your own traffic").
check "release: $N packets were held at SIGTERM (kernel queue $(echo "$K" | awk '{ print $3 }') + taken over $(ld_counter taken))" \
	[ "$(( $(echo "$K" | awk '{ print $3 }') + $(ld_counter taken) ))" = $N ]
check "release: exit status 0" [ "$LD_RC" = 0 ]
check "release: all $N arrive" [ "$(json_get "$LDT_TMP/release.json" unique)" = $N ]
check "release: they arrive early, at SIGTERM (max one-way < 2.5 s)" \
	awk -v x="$(json_get "$LDT_TMP/release.json" lat_us_max)" 'BEGIN { exit !(x < 2500000) }'
check "release: every packet verdicted once (passed $N)" [ "$(ld_counter passed)" = $N ]
check "release: the copies a rule queued again were only accepted (requeued $N)" [ "$(ld_counter requeued)" = $N ]

run drop --held-on-exit drop
check "drop: exit status 0" [ "$LD_RC" = 0 ]
check "drop: none arrives" [ "$(json_get "$LDT_TMP/drop.json" received)" = 0 ]
check "drop: every packet verdicted once (dropped $N)" [ "$(ld_counter dropped)" = $N ]
check "drop: no copy sent" [ "$(ld_counter requeued)" = 0 ]
ldt_done

#!/bin/sh
# Editing checksum-not-ready (GSO) packets through the Lua views keeps them
# valid on the wire. A 20 MB TCP transfer over loopback in a namespace goes
# through the queue; the policy rewrites the TCP window of every segment
# (a field the TCP checksum covers). Loopback hands the kernel's GSO
# super-packets over with CHECKSUM_PARTIAL (NFQA_SKB_CSUMNOTREADY), whose
# checksum field holds only the pseudo-header sum; once the verdict carries
# new bytes the kernel marks them CHECKSUM_NONE (nfqnl_mangle) and the
# receiver verifies them in software. So the transfer completes with the
# right hash only if the library writes complete checksums (lua/divert/
# view.lua, must_complete): a wrong one is dropped and retransmitted forever.
# (GSO packets beyond the 64 KiB the kernel copies arrive truncated and are
# left alone: changed bytes of a truncated packet cannot be sent back.)
LDT_AREA=lua-notready
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools tcpxfer
ldt_tmpdir
ns_create a; NS=$LDT_NS
BYTES=20000000

cat >"$LDT_TMP/policy.lua" <<'LUA'
-- Shrink the advertised TCP window by one on every segment (checksum
-- follows incrementally; on a checksum-not-ready packet the first write
-- completes the checksum). Count what was seen, write it out at stop.
local divert = require "divert"
local seen, notready, edited, big, edited_big = 0, 0, 0, 0, 0
return {
  on_packet = function (pkt)
    local tcp = pkt:tcp()
    if not tcp then return divert.PASS end
    seen = seen + 1
    if pkt:csum_notready() then notready = notready + 1 end
    if pkt:len() > 1500 then big = big + 1 end
    -- a packet the kernel gave only in part (GSO beyond 64 KiB) cannot be
    -- sent back changed: the core would pass it as it was and count an error
    if pkt:truncated() then return divert.PASS end
    local w = tcp:window()
    if w > 1 then
      tcp:window(w - 1); edited = edited + 1
      if pkt:len() > 1500 then edited_big = edited_big + 1 end
    end
    return divert.PASS
  end,
  on_stop = function ()
    io.stderr:write(string.format("ld-test-stats: seen %d notready %d edited %d big %d edited_big %d\n",
                                  seen, notready, edited, big, edited_big))
  end,
}
LUA

iptables_ns "$NS" -A OUTPUT -p tcp --dport 5001 -j NFQUEUE --queue-num 0
iptables_ns "$NS" -A OUTPUT -p tcp --sport 5001 -j NFQUEUE --queue-num 0
export LD_TEST_STATS="$LDT_TMP/stats"
ld_start "$NS" "$LDT_TMP/policy.lua" --queue 0

tcp_run "$NS" 127.0.0.1 5001 $BYTES 11 "$LDT_TMP/xfer"
ld_stop

SENT=$(json_hash "$LDT_TMP/xfer.send")
GOT=$(json_hash "$LDT_TMP/xfer.recv")
cat "$LD_TEST_STATS"
NOTREADY=$(awk '{print $4}' "$LD_TEST_STATS")
EDITED=$(awk '{print $6}' "$LD_TEST_STATS")
EDITED_BIG=$(awk '{print $10}' "$LD_TEST_STATS")
check "all $BYTES bytes arrive" grep -q "\"received\":$BYTES" "$LDT_TMP/xfer.recv"
check "the hash of what arrived equals the hash of what was sent ($SENT)" \
	[ -n "$SENT" ] && [ "$SENT" = "$GOT" ]
check "the policy edited checksum-not-ready packets ($NOTREADY not ready, $EDITED edited)" \
	[ "${NOTREADY:-0}" -gt 0 ] && [ "${EDITED:-0}" -gt 0 ]
check "some edited packets were GSO packets bigger than the MTU ($EDITED_BIG)" [ "${EDITED_BIG:-0}" -gt 0 ]
check "the core sent the edited packets back (modified counter)" [ "$(ld_counter modified)" -gt 0 ]
check "no handler errors" [ "$(ld_counter errors)" = 0 ]
check "exit status 0" [ "$LD_RC" = 0 ]
ldt_done

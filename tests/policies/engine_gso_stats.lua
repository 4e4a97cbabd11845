-- Test policy: pass everything; count GSO packets, packets bigger than a
-- 1500-byte MTU and checksum-not-ready ones; write the counts at stop to the
-- file named by $LD_TEST_STATS.
local divert = require "divert"
local gso, big, notready, total, maxlen = 0, 0, 0, 0, 0

return {
  on_packet = function (pkt)
    total = total + 1
    if pkt:gso() then gso = gso + 1 end
    if pkt:csum_notready() then notready = notready + 1 end
    local len = pkt:len()
    if len > 1500 then big = big + 1 end
    if len > maxlen then maxlen = len end
    return divert.PASS
  end,
  on_stop = function ()
    -- the sandboxed daemon writes no files: ld_stop copies this line to $LD_TEST_STATS
    io.stderr:write(string.format("ld-test-stats: total %d gso %d big %d notready %d maxlen %d\n",
                                  total, gso, big, notready, maxlen))
  end,
}

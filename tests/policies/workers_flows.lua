-- Issue 16 (--workers): a per-flow pipe. Every 10th datagram of each UDP
-- flow (told apart by destination port) is dropped: the first dropped is
-- sequence 9, then 19, 29, ... This is exact per flow only if every packet
-- of a flow reaches the same worker (each worker has its own Lua state).
local divert = require "divert"
local seen = {}
local total = 0
return {
  on_packet = function (pkt)
    local udp = pkt:udp()
    if not udp then return divert.PASS end
    local port = udp:dst_port()
    local n = (seen[port] or 0) + 1
    seen[port] = n
    total = total + 1
    if n % 10 == 0 then return divert.DROP end
    return divert.PASS
  end,
  on_stop = function ()
    -- the sandboxed worker writes no files: the test reads these lines
    io.stderr:write(string.format("ld-test-stats: flows-worker %d\n", total))   -- one write
  end,
}

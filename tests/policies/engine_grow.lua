-- Test policy: grow every UDP datagram by GROW bytes of zeros (default
-- 20000), fixing lengths and checksums: verdicts that carry big payloads.
local divert = require "divert"
local GROW = tonumber(os.getenv("GROW") or "20000")
local zeros = string.rep("\0", GROW)

return function (pkt)
  if pkt:udp() then
    assert(pkt:append(zeros))
    assert(pkt:fix_lengths())
    assert(pkt:fix_checksums())
  end
  return divert.PASS
end

-- Test policy (issue 14 item 5): hold every packet after claiming, through
-- the raw descriptor, a changed length past what any packet can have
-- (d.len = 70000 > 65535 and > cap). The core must check a held packet's
-- length as it checks an immediate one: the edit is refused (counted as an
-- error), the original bytes go out, nothing overflows.
local divert = require "divert"
local bit = require "bit"

local MODIFIED = 4   -- LD_SET_MODIFIED

return function (pkt)
  local d = pkt.d
  d.len = 70000
  d.set = bit.bor(d.set, MODIFIED)
  pkt:hold(5)
  return divert.PASS
end

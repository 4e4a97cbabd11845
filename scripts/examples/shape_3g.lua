-- shape_3g.lua: a 3G (HSPA) phone link. Downlink 2 Mbit/s, uplink 384
-- kbit/s, 100 ms +- 30 ms each way (correlated: latency drifts rather than
-- jumps), 1% loss. Separate pipes per direction, as on a real radio link.
--   luadivert run scripts/examples/shape_3g.lua --hold-max 16384
local shape = require "divert.shape"

local up = shape.pipe{ direction = "out", rate = "384kbit", limit = "64kb",
  delay = 100, jitter = 30, distribution = "normal", correlation = 0.5, loss = 0.01 }
local down = shape.pipe{ direction = "in", rate = "2mbit", limit = "128kb",
  delay = 100, jitter = 30, distribution = "normal", correlation = 0.5, loss = 0.01 }

return function (pkt)
  if up(pkt) == shape.DROP then return shape.DROP end
  return down(pkt)   -- a pipe passes packets of the other direction untouched
end

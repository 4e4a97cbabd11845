-- shape_lag.lua (clumsy "Lag"): add 100 ms to every packet, in order.
--   luadivert run scripts/examples/shape_lag.lua --hook output --filter udp
-- Packets this host sends are copied and sent at their release time (see
-- docs/shaping.md, "Shaping your own traffic"); pings show 100 ms more. `delay` takes fractions (0.25 = 250 us).
local shape = require "divert.shape"

local lag = shape.pipe{ delay = 100 }

return function (pkt)
  return lag(pkt)
end

-- shape_lag.lua (clumsy "Lag"): add 100 ms to every packet, in order.
--   iptables -A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass
--   luadivert run scripts/examples/shape_lag.lua --queue 0
-- The packets wait in the kernel queue (nothing is copied); pings through
-- the rule show 100 ms more. `delay` takes fractions (0.25 = 250 us).
local shape = require "divert.shape"

local lag = shape.pipe{ delay = 100 }

return function (pkt)
  return lag(pkt)
end

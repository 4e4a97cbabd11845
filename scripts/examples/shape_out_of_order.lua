-- shape_out_of_order.lua (clumsy "Out of order"): packets arrive out of
-- order. Everything is delayed 20 ms except 10% of the packets, which go at
-- once and so overtake the ones still waiting (netem's `reorder`).
--   luadivert run scripts/examples/shape_out_of_order.lua --hook output --filter udp
-- `every = 5` instead of a fraction sends exactly each 5th packet ahead.
local shape = require "divert.shape"

local ooo = shape.pipe{ delay = 20, reorder = 0.10 }

return function (pkt)
  return ooo(pkt)
end

-- shape_drop.lua (clumsy "Drop"): lose 10% of the packets at random.
--   luadivert run scripts/examples/shape_drop.lua --hook output --filter udp
-- With a seed the same packets are lost on every run (same traffic, same
-- drops); loss_correlation = 0.5 would make losses come in bursts while the
-- long-run rate stays 10%.
local shape = require "divert.shape"

local drop = shape.pipe{ loss = 0.10, seed = 1 }

return function (pkt)
  return drop(pkt)
end

-- shape_drop.lua (clumsy "Drop"): lose 10% of the packets at random.
--   iptables -A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass
--   luadivert run scripts/examples/shape_drop.lua --queue 0
-- With a seed the same packets are lost on every run (same traffic, same
-- drops); loss_correlation = 0.5 would make losses come in bursts while the
-- long-run rate stays 10%.
local shape = require "divert.shape"

local drop = shape.pipe{ loss = 0.10, seed = 1 }

return function (pkt)
  return drop(pkt)
end

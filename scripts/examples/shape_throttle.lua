-- shape_throttle.lua (clumsy "Throttle"): now and then, block the traffic
-- for 300 ms and then let everything that piled up go at once.
--   luadivert run scripts/examples/shape_throttle.lua --hook output --hold-max 8192
-- Each packet outside a frame starts one with probability `chance`; inside a
-- frame packets wait for its end (or are dropped, with drop = true).
local shape = require "divert.shape"

local throttle = shape.pipe{ throttle = { frame = 300, chance = 0.02, drop = false } }

return function (pkt)
  return throttle(pkt)
end

-- shape_satellite.lua: a geostationary satellite link. About 300 ms each
-- way (600 ms round trip) with little jitter, 10 Mbit/s down, 2 Mbit/s up,
-- 0.5% loss in short bursts, and a deep queue (bufferbloat included).
--   luadivert run scripts/examples/shape_satellite.lua --hold-max 32768
local shape = require "divert.shape"

local link = {
  out = shape.chain(
    shape.pipe{ direction = "out", loss = 0.005, loss_correlation = 0.3 },
    shape.pipe{ direction = "out", rate = "2mbit", limit = "256kb" },
    shape.pipe{ direction = "out", delay = 300, jitter = 5, distribution = "normal" }),
  ["in"] = shape.chain(
    shape.pipe{ direction = "in", loss = 0.005, loss_correlation = 0.3 },
    shape.pipe{ direction = "in", rate = "10mbit", limit = "1mb" },
    shape.pipe{ direction = "in", delay = 300, jitter = 5, distribution = "normal" }),
}

return function (pkt)
  if link.out(pkt) == shape.DROP then return shape.DROP end
  return link["in"](pkt)
end

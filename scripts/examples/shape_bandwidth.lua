-- shape_bandwidth.lua (clumsy "Bandwidth"): cap the traffic at 500 kbit/s.
-- A real queue: packets wait for the link (a token bucket with a 16 KB
-- burst) and only what does not fit in 64 KB of queue is dropped, as on a
-- router, so TCP slows down instead of collapsing.
--   luadivert run scripts/examples/shape_bandwidth.lua --hook output
-- Rates use tc's units: "500kbit" (bits/s), "64kbps" (BYTES/s), or a number
-- of bits/s; overhead adds per-packet bytes (e.g. 38 for Ethernet framing).
local shape = require "divert.shape"

local bw = shape.pipe{ rate = "500kbit", burst = "16kb", limit = "64kb", overhead = 38 }

return function (pkt)
  return bw(pkt)
end

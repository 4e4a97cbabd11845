-- shape_lossy_wifi.lua: a busy Wi-Fi. 3 ms +- 8 ms of jitter (heavy tail),
-- and losses in bursts (Gilbert-Elliott: a good state losing 0.5%, a bad
-- state, entered 1% of the time and lasting 5 packets on average, losing
-- 60%), 20 Mbit/s of air time.
--   luadivert run scripts/examples/shape_lossy_wifi.lua
local shape = require "divert.shape"

local wifi = shape.pipe{
  name = "wifi",
  delay = 3, jitter = 8, distribution = "paretonormal",
  gemodel = { p = 0.01, r = 0.2, h = 0.4, k = 0.995 },
  rate = "20mbit", burst = "32kb", limit = 200,
}

return function (pkt)
  return wifi(pkt)
end

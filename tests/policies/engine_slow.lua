-- Test policy: pass everything, but spend about 1 ms on each packet so that
-- the kernel queue fills up under a fast sender.
local divert = require "divert"
local clock = os.clock

return function (pkt)
  local t = clock() + 0.001
  while clock() < t do end
  return divert.PASS
end

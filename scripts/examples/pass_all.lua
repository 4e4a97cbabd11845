-- pass_all.lua: let every packet through unchanged. The smallest policy, and
-- the baseline of the benchmarks.
local divert = require "divert"

return function (pkt)
  return divert.PASS
end

-- shape_duplicate.lua (clumsy "Duplicate"): send 5% of the packets twice.
--   luadivert run scripts/examples/shape_duplicate.lua --hook output --filter udp
-- The copy leaves through a raw socket marked 0x4c440000: the rules luadivert
-- installs RETURN on that mark, so it is not queued again.
local shape = require "divert.shape"

local dup = shape.pipe{ duplicate = 0.05 }

return function (pkt)
  return dup(pkt)
end

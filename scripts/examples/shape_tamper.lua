-- shape_tamper.lua (clumsy "Tamper"): flip one random bit in the payload of
-- 5% of the packets. keep_checksums = true fixes the TCP/UDP checksum so
-- the receiver's application sees the damaged bytes; false (netem's way)
-- leaves the checksum wrong and the receiver's kernel discards the packet.
--   luadivert run scripts/examples/shape_tamper.lua --hook output --filter udp
local shape = require "divert.shape"

local tamper = shape.pipe{ corrupt = 0.05, keep_checksums = true }

return function (pkt)
  return tamper(pkt)
end

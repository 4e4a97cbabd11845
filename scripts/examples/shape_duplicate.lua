-- shape_duplicate.lua (clumsy "Duplicate"): send 5% of the packets twice.
--   iptables -A OUTPUT -m mark --mark 0x4c440000/0x4c440000 -j RETURN
--   iptables -A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass
--   luadivert run scripts/examples/shape_duplicate.lua --queue 0
-- The copy leaves through a raw socket marked 0x4c440000: the RETURN rule
-- (which `luadivert rules` installs for you) keeps it from being queued again.
local shape = require "divert.shape"

local dup = shape.pipe{ duplicate = 0.05 }

return function (pkt)
  return dup(pkt)
end

-- shape_slow_dns.lua: slow DNS only. Queries (UDP and TCP to port 53) wait
-- 80 ms +- 20 ms; 2% are lost (the resolver retries); other traffic passes
-- untouched.
--   luadivert run scripts/examples/shape_slow_dns.lua --hook output --filter "dst port 53"
-- (The rules already select DNS; the port check keeps the policy correct
-- under a broader rule too.)
local divert = require "divert"
local shape = require "divert.shape"

local dns = shape.pipe{ delay = 80, jitter = 20, distribution = "normal", loss = 0.02 }

return function (pkt)
  local l4 = pkt:udp() or pkt:tcp()
  if l4 and l4:dst_port() == 53 then
    return dns(pkt)
  end
  return divert.PASS
end

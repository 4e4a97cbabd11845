-- shape_slow_dns.lua: slow DNS only. Queries (UDP and TCP to port 53) wait
-- 80 ms +- 20 ms; 2% are lost (the resolver retries); other traffic passes
-- untouched.
--   iptables -A OUTPUT -p udp --dport 53 -j NFQUEUE --queue-num 0 --queue-bypass
--   iptables -A OUTPUT -p tcp --dport 53 -j NFQUEUE --queue-num 0 --queue-bypass
--   luadivert run scripts/examples/shape_slow_dns.lua --queue 0
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

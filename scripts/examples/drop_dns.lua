-- drop_dns.lua: drop DNS queries over UDP (destination port 53), pass the rest.
--   iptables -A OUTPUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass
--   luadivert run scripts/examples/drop_dns.lua --queue 0
local divert = require "divert"

return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 53 then
    return divert.DROP
  end
  return divert.PASS
end

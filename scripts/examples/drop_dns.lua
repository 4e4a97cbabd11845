-- drop_dns.lua: drop DNS queries over UDP (destination port 53), pass the rest.
--   luadivert run scripts/examples/drop_dns.lua --hook output --filter udp
local divert = require "divert"

return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 53 then
    return divert.DROP
  end
  return divert.PASS
end

-- Drop UDP to port 9001, pass everything else.
local divert = require "divert"
return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 9001 then return divert.DROP end
  return divert.PASS
end

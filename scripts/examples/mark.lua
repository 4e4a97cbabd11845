-- mark.lua: set the packet mark on TCP SYNs (0x1) and on DNS (0x35), so
-- that later rules or policy routing can act on it:
--   luadivert run scripts/examples/mark.lua --hook output
--   iptables -t mangle -A POSTROUTING -m mark --mark 0x35 -j LOG   # to see them
local divert = require "divert"

local MARK_SYN, MARK_DNS = 0x1, 0x35

return function (pkt)
  local tcp = pkt:tcp()
  if tcp and tcp:syn() and not tcp:flag("ack") then
    pkt:set_mark(MARK_SYN)
  else
    local udp = pkt:udp()
    if udp and (udp:dst_port() == 53 or udp:src_port() == 53) then
      pkt:set_mark(MARK_DNS)
    end
  end
  return divert.PASS
end

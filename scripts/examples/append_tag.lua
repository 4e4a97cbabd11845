-- append_tag.lua: append " [luadivert]" to the payload of UDP datagrams to
-- port 9000 (a length change: the IP and UDP lengths and the checksums are
-- fixed after the bytes are added).
local divert = require "divert"

local PORT, TAG = 9000, " [luadivert]"

return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == PORT then
    if pkt:append(TAG) then
      pkt:fix_lengths()
      pkt:fix_checksums()
    end
  end
  return divert.PASS
end

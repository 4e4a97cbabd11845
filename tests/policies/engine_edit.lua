-- Test policy: one behaviour per UDP destination port.
--   9000: rewrite the filler bytes ('a' -> 'B') after the 16-byte udpsend header
--   9100: append " luadivert" to the payload (length change)
--   9200: set the packet mark to 0x2a
--   9300: send the packet to queue 1
--   9400: pass it and inject one duplicate
local divert = require "divert"
local ffi = require "ffi"

local A, B = string.byte("a"), string.byte("B")
local HDR = 16
local Q1 = divert.queue(1)

return function (pkt)
  local udp = pkt:udp()
  if not udp then return divert.PASS end
  local port = udp:dst_port()
  if port == 9000 then
    local p, n = pkt:payload()
    for i = HDR, n - 1 do
      if p[i] == A then p[i] = B end
    end
    assert(pkt:fix_checksums())
  elseif port == 9100 then
    assert(pkt:append(" luadivert"))
    assert(pkt:fix_lengths())
    assert(pkt:fix_checksums())
  elseif port == 9200 then
    pkt:set_mark(0x2a)
  elseif port == 9300 then
    return Q1
  elseif port == 9400 then
    pkt:duplicate(1)
  end
  return divert.PASS
end

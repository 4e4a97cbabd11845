-- Test policy: every packet whose udpsend sequence number is a multiple of 3
-- raises an error; one of 5 returns a non-verdict; the rest pass.
local divert = require "divert"
local bit = require "bit"

return function (pkt)
  local p, n = pkt:payload()
  if not p or n < 8 then return divert.PASS end
  -- udpsend writes the sequence number little-endian in the first 8 bytes
  local seq = p[0] + p[1] * 256 + p[2] * 65536
  if seq % 3 == 0 then
    error("seq " .. seq .. " is a multiple of 3")
  elseif seq % 5 == 0 then
    return "not a verdict"
  end
  return divert.PASS
end

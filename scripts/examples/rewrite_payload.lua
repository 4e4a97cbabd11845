-- rewrite_payload.lua: in UDP datagrams to port 9000, replace every "hello"
-- in the payload with "HELLO", then fix the checksums. The bytes are edited
-- in place, in the kernel's receive buffer: nothing is copied.
--   luadivert run scripts/examples/rewrite_payload.lua --hook output --filter "udp dst port 9000"
local divert = require "divert"
local ffi = require "ffi"

local PORT = 9000
local FROM, TO = "hello", "HELLO"
local n_from = #FROM
local first = FROM:byte(1)
local C = ffi.C
ffi.cdef [[ int memcmp(const void *a, const void *b, size_t n); ]]

return function (pkt)
  local udp = pkt:udp()
  if not udp or udp:dst_port() ~= PORT then return divert.PASS end
  local p, n = pkt:payload()
  local changed = false
  local i = 0
  while i <= n - n_from do
    if p[i] == first and C.memcmp(p + i, FROM, n_from) == 0 then
      ffi.copy(p + i, TO, n_from)
      changed = true
      i = i + n_from
    else
      i = i + 1
    end
  end
  -- fix_checksums() also tells the core to send the new bytes back
  if changed then pkt:fix_checksums() end
  return divert.PASS
end

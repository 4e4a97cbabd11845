-- Test policy for tests/integration/test_sandbox.sh: every packet to port
-- 9201 keeps 1 MiB more (a table that grows without bound); everything else
-- passes. Under --memory-max the allocation fails: a handler error, the
-- packet gets the default verdict, and other ports keep flowing.
local divert = require "divert"
local ffi = require "ffi"

local kept = {}
local MIB = 1024 * 1024

return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 9201 then
    kept[#kept + 1] = ffi.new("uint8_t[?]", MIB)   -- zero-filled: really resident
  end
  return divert.PASS
end

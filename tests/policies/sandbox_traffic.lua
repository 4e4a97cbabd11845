-- Test policy for tests/integration/test_sandbox.sh: the daemon runs it as an
-- unprivileged user under seccomp, and every kind of verdict must still work.
-- One behaviour per UDP destination port:
--   9101 pass             9102 drop             9103 rewrite filler 'a' -> 'B'
--   9104 delay 20 ms      9105 pass + one duplicate (raw socket)
--   9106 read /etc/shadow 9107 os.execute       9108 open a file for writing
--   9109 os.exit(3)       9110 error with a table as the error object (even
--                              sequence numbers), one whose __tostring raises (odd)
-- 9106..9110 must raise: those packets get the default verdict (the test
-- runs with --default-verdict drop, so none of them arrives).
local divert = require "divert"
local shape = require "divert.shape"

-- The top level runs in the worker after the sandbox: report who we are (the
-- Uid line of our own /proc/self/status, no os.getenv); the test compares it.
do
  local f = assert(io.open("/proc/self/status", "r"))
  local uid = f:read("*a"):match("\nUid:%s+(%d+)")
  f:close()
  io.stderr:write("ld-test-toplevel-uid: ", uid, "\n")
end

-- require searches the library and the policy's directory only
assert(not package.path:find("./?", 1, true), "package.path has ./: " .. package.path)
assert(package.cpath == "", "package.cpath is not empty: " .. package.cpath)

local A, B = string.byte("a"), string.byte("B")
local HDR = 16
local delay = shape.pipe{ delay = 20 }
local probe = assert(os.getenv("SANDBOX_WRITE_PROBE"), "SANDBOX_WRITE_PROBE not set")

return function (pkt)
  local udp = pkt:udp()
  if not udp then return divert.PASS end
  local port = udp:dst_port()
  if port == 9101 then
    return divert.PASS
  elseif port == 9102 then
    return divert.DROP
  elseif port == 9103 then
    local p, n = pkt:payload()
    for i = HDR, n - 1 do
      if p[i] == A then p[i] = B end
    end
    assert(pkt:fix_checksums())
  elseif port == 9104 then
    return delay(pkt)
  elseif port == 9105 then
    pkt:duplicate(1)
  elseif port == 9106 then
    local f = assert(io.open("/etc/shadow", "r"))
    f:close()
  elseif port == 9107 then
    os.execute("id")
  elseif port == 9108 then
    local f = assert(io.open(probe, "w"))
    f:close()
  elseif port == 9109 then
    os.exit(3)
  elseif port == 9110 then
    local p = pkt:payload()   -- udpsend's sequence number, little-endian
    if p[0] % 2 == 0 then
      error({ code = 42, why = "a table as the error" })
    end
    -- an error object whose __tostring raises in turn: still a clean log line
    error(setmetatable({}, { __tostring = function () error("no text for you") end }))
  end
  return divert.PASS
end

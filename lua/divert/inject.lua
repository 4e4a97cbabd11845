-- divert.inject: new packets from a policy (core/lua_inject.h draws the path).
--
--   divert.inject(bytes_or_pkt, {direction = "out"|"in", ifindex = n})
--     -> true, or nil and a message
--
-- bytes_or_pkt is a string of IP bytes (starting at the IPv4/IPv6 header)
-- or a packet object (the one being handled, or one from
-- packet.from_string). The packet goes out as it is: its checksums must be
-- right (pkt:fix_checksums()). Live it leaves through a raw socket with the
-- skip mark, so no divert rule of luadivert queues it again; "in" sends it
-- to its destination through the routing table, so one for a local address
-- arrives through loopback (Linux has no "receive this on eth0" for a raw
-- socket). In replay it is written to the output at the time of the packet
-- being handled. Misuse (wrong types, an unknown direction) raises an
-- error; a packet the kernel refuses returns nil and the reason.
local ffi = require "divert.abi"

ffi.cdef [[
struct ld_inject_sink;
int ld_lua_inject(struct ld_inject_sink *sink, const uint8_t *pkt, uint32_t len, int inbound,
                  uint32_t ifindex);
char *strerror(int errnum);
]]

local C = ffi.C
local sink_t = ffi.typeof("struct ld_inject_sink *")
local u8p = ffi.typeof("const uint8_t *")
local pkt_t = require("divert.view").pkt_t

local M = {}
local sink        -- the engine's sink, nil outside luadivert run/replay
local inject_fn   -- C.ld_lua_inject, resolved once

--- Called by divert.host at start with the engine's sink (a light userdata).
function M.attach(addr)
  sink = ffi.cast(sink_t, addr)
  local ok, fn = pcall(function () return C.ld_lua_inject end)
  inject_fn = ok and fn or nil
end

local function fail(rc)
  return nil, "divert.inject: " .. ffi.string(C.strerror(-rc))
end

function M.send(p, opts)
  local data, len
  if type(p) == "string" then
    data, len = ffi.cast(u8p, p), #p
  elseif ffi.istype(pkt_t, p) then
    data, len = p.d.data, p.d.len
  else
    error("divert.inject: expected a string of IP bytes or a packet, got " .. type(p), 2)
  end
  local inbound, ifindex = 0, 0
  if opts ~= nil then
    if type(opts) ~= "table" then error("divert.inject: options must be a table", 2) end
    local dir = opts.direction
    if dir == "in" then inbound = 1
    elseif dir ~= nil and dir ~= "out" then
      error("divert.inject: direction must be \"out\" or \"in\", got " .. tostring(dir), 2)
    end
    ifindex = opts.ifindex or 0
    if type(ifindex) ~= "number" or ifindex < 0 or ifindex % 1 ~= 0 or ifindex > 0x7fffffff then
      error("divert.inject: ifindex must be an interface index, got " .. tostring(ifindex), 2)
    end
  end
  if not sink or not inject_fn then
    return nil, "divert.inject: no engine here (it works inside luadivert run and replay)"
  end
  local rc = inject_fn(sink, data, len, inbound, ifindex)
  if rc ~= 0 then return fail(rc) end
  return true
end

function M.selftest()
  local ok, err = M.send("\69\0\0\20" .. string.rep("\0", 16))
  assert(ok == nil and err:match("no engine"), err)
  assert(not pcall(M.send, 42))
  assert(not pcall(M.send, "x", { direction = "sideways" }))
  assert(not pcall(M.send, "x", { ifindex = -1 }))
end

return M

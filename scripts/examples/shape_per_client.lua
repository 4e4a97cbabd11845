-- shape_per_client.lua: 1 Mbit/s per client on a router. Every LAN address
-- gets its own 1 Mbit/s queue for downloads and another for uploads
-- (per_flow = "dst" / "src": one state per address, made when a client
-- first shows up, forgotten after 60 s of silence).
--   luadivert run scripts/examples/shape_per_client.lua --hook forward \
--       --filter "net 192.168.1.0/24" --hold-max 32768
-- On a host instead of a router, one pipe with per_flow = true gives each
-- connection (5-tuple) its own 1 Mbit/s.
local divert = require "divert"
local shape = require "divert.shape"
local addr = require "divert.addr"

local LAN, LAN_LEN = addr.cidr("192.168.1.0/24")

local down = shape.pipe{ rate = "1mbit", burst = "16kb", limit = "64kb", per_flow = "dst", idle = 60 }
local up   = shape.pipe{ rate = "1mbit", burst = "16kb", limit = "64kb", per_flow = "src", idle = 60 }

return function (pkt)
  local ip = pkt:ipv4()
  if not ip then return divert.PASS end
  if addr.in4(ip:dst(), LAN, LAN_LEN) then return down(pkt) end
  if addr.in4(ip:src(), LAN, LAN_LEN) then return up(pkt) end
  return divert.PASS
end

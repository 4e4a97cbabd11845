-- tests/policies/inject_new.lua: divert.inject() from a policy.
--   live (INJECT_MODE=live): a UDP packet for port 9040 is dropped; instead
--     the policy sends a reply to the sender's port 9041 (direction "out")
--     and a copy to this host's port 9042 (direction "in");
--   replay (default): every UDP packet passes, followed by a copy with TTL 7.
local ffi = require "ffi"
local divert = require "divert"
local packet = require "divert.packet"

local live = os.getenv("INJECT_MODE") == "live"
local failed = 0

local function copy_of(pkt)
  local pk = packet.from_string(ffi.string(pkt:data(), pkt.d.len))
  return pk, pk:ipv4(), pk:udp()
end

local function send(pk, dir)
  pk:fix_checksums()
  local ok, err = divert.inject(pk, { direction = dir })
  if not ok then
    failed = failed + 1
    if failed < 5 then io.stderr:write("inject failed: ", tostring(err), "\n") end
  end
end

return {
  on_packet = function (pkt)
    local ip, udp = pkt:ipv4(), pkt:udp()
    if not ip or not udp then return divert.PASS end
    if not live then
      local pk, ip2 = copy_of(pkt)
      ip2:ttl(7)
      send(pk, "out")
      return divert.PASS
    end
    if udp:dst_port() ~= 9040 then return divert.PASS end
    local reply, rip, rudp = copy_of(pkt)
    rip:src(ip:dst()); rip:dst(ip:src())
    rudp:src_port(9040); rudp:dst_port(9041)
    send(reply, "out")
    local copy, _, cudp = copy_of(pkt)
    cudp:dst_port(9042)
    send(copy, "in")
    return divert.DROP
  end,
  on_stop = function ()
    io.stderr:write("inject failures ", failed, "\n")
  end,
}

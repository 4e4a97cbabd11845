-- drop_odd_pings.lua: drop ICMP echo requests with an odd sequence number
-- (IPv4 and IPv6), pass everything else. `ping -c 10` then loses 5 of 10.
local divert = require "divert"
local bit = require "bit"

local ECHO_REQUEST = { [1] = 8, [58] = 128 }  -- by protocol: ICMP, ICMPv6

return function (pkt)
  local icmp = pkt:icmp() or pkt:icmpv6()
  if icmp and icmp:type() == ECHO_REQUEST[pkt:l4proto()] and bit.band(icmp:seq(), 1) == 1 then
    return divert.DROP
  end
  return divert.PASS
end

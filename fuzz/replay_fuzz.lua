-- The policy of fuzz/replay_fuzz.c: read every view of every packet, then
-- change it (a port, the TTL, the length) so the write paths run too.
local divert = require "divert"
return function (pkt)
  local ip = pkt:ip()
  if ip then
    local _ = ip:hdr_len()
    if ip.ipver == 4 then ip:ttl(7) else ip:hop_limit(7) end
  end
  local t, u, ic = pkt:tcp(), pkt:udp(), pkt:icmp() or pkt:icmpv6()
  if t then t:dst_port(1); t:mss(); t:timestamps() end
  if u then u:dst_port(2); u:length() end
  if ic and ic:is_error() then
    local inner = ic:inner()
    if inner then local _ = inner:protocol(); ic:inner_ports() end
  end
  local p, n = pkt:payload()
  if p and n > 0 then p[0] = 0x41 end
  pkt:checksums_ok()
  pkt:fix_checksums()
  if pkt:len() > 0 and pkt:len() % 3 == 0 then pkt:append("xyz"); pkt:fix_lengths() end
  return pkt:len() % 7 == 0 and divert.DROP or divert.PASS
end

-- bench/policies/parse_match.lua: parse IPv4 + UDP and compare the
-- destination port, the smallest useful policy (DESIGN.md). The benchmark
-- traffic goes to port 9000, so every packet is parsed and passed; the
-- comparison with 53 keeps the branch honest.
local divert = require "divert"
local PASS, DROP = divert.PASS, divert.DROP
return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 53 then return DROP end
	return PASS
end

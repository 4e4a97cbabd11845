-- bench/policies/rewrite.lua: rewrite one payload byte of every UDP
-- datagram to port 9000 and keep the checksum right, then pass it.
-- Byte 16 of the payload is the first filler byte after udpsend's sequence
-- number and timestamp (tests/tools/tool_common.h), so receivers still
-- count sequences. Loopback traffic is usually CSUMNOTREADY (the checksum
-- field holds only the pseudo-header sum and the kernel will not finish it
-- for a changed payload), so that case gets a complete checksum; a ready
-- checksum gets the RFC 1624 incremental update.
local divert = require "divert"
local checksum = require "divert.checksum"
local PASS = divert.PASS
local update16 = checksum.update16
local NEW = 0x5a
local OFF = 16    -- even: the high byte of a 16-bit word of the UDP segment

return function (pkt)
	local udp = pkt:udp()
	if udp and udp:dst_port() == 9000 then
		local p, n = udp:payload()
		if n > OFF + 1 then
			local old = p[OFF] * 256 + p[OFF + 1]
			p[OFF] = NEW
			if pkt:csum_notready() then
				pkt:fix_checksums()
			else
				local hc = udp:checksum()
				if hc ~= 0 then      -- 0: sent without a checksum (IPv4)
					hc = update16(hc, old, NEW * 256 + p[OFF + 1])
					udp:checksum(hc == 0 and 0xffff or hc)
				end
				pkt:modified()
			end
		end
	end
	return PASS
end

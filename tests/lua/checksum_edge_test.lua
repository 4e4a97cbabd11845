-- Checksums in two corners (issue 14, items 11 and 12):
--  - UDP whose length field is shorter than the IP payload: the checksum
--    covers the datagram as the field gives it, for IPv6 as for IPv4, so
--    fix_checksums() then checksums_ok() agree (and match a sum by the book);
--  - writes through the packet quoted in an ICMP/ICMPv6 error keep the
--    outer checksum right, for every field of the quoted header, on every
--    ICMP error in the real captures of ../shared/pcaps.
--   luajit tests/lua/checksum_edge_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"
local checksum = require "divert.checksum"
local pf = require "pcapfile"

-- The UDP checksum by the book over the first ulen bytes of the datagram.
local function udp_ref(pkt)
	local ip = pkt:ip()
	local l4 = ip.p + ip.l4off
	local ulen = l4[4] * 256 + l4[5]
	local pseudo = ffi.new("uint8_t[40]")
	local n
	if ip.ipver == 6 then
		ffi.copy(pseudo, ip.p + 8, 32)
		pseudo[34], pseudo[35], pseudo[39] = math.floor(ulen / 256), ulen % 256, 17
		n = 40
	else
		ffi.copy(pseudo, ip.p + 12, 8)
		pseudo[9], pseudo[10], pseudo[11] = 17, math.floor(ulen / 256), ulen % 256
		n = 12
	end
	local buf = ffi.new("uint8_t[?]", n + ulen)
	ffi.copy(buf, pseudo, n); ffi.copy(buf + n, l4, ulen)
	buf[n + 6], buf[n + 7] = 0, 0
	local c = checksum.reference(buf, n + ulen)
	return c == 0 and 65535 or c
end

-- IPv6/UDP: payload length 20, UDP length 10 (2 data bytes + 10 trailing)
local UDP6 = T.unhex("60000000 0014 11 40", "fd000198001800000000000000000001",
	"fd000198001800000000000000000002", "30390035000a0000", "6162", "00000000000000000000")
-- the same over IPv4: total length 40, UDP length 10
local UDP4 = T.unhex("45000028000040004011 0000 c6120001c6120002", "30390035000a1234",
	"6162", "00000000000000000000")

for _, c in ipairs { { "IPv6", UDP6 }, { "IPv4", UDP4 } } do
	T.check(c[1] .. " UDP with a length field shorter than the payload", function ()
		local pkt = packet.from_string(c[2])
		local u = assert(pkt:udp())
		T.eq(u:length(), 10, "udp length")
		assert(pkt:fix_checksums())
		T.eq(pkt:checksums_ok(), true, "checksums_ok after fix_checksums")
		T.eq(u:checksum(), udp_ref(pkt), "checksum by the book over the UDP length")
		u:src_port(1)   -- incremental updates stay right too
		T.eq(pkt:checksums_ok(), true, "after a write")
	end)
end

-- Every writer of a quoted header, with a value that differs from the one there.
local WRITERS4 = { "ttl", "tos", "id", "src", "dst", "protocol", "total_len", "dscp", "ecn" }
local WRITERS6 = { "hop_limit", "traffic_class", "flow_label", "src", "dst", "dscp", "ecn" }
local function other(v, max)
	if type(v) == "cdata" then return "fd00:198:18::99" end   -- an IPv6 address
	return (v + 1) % (max + 1)
end
local MAX = { ttl = 255, tos = 255, id = 65535, src = 4294967295, dst = 4294967295, protocol = 255,
	total_len = 65535, dscp = 63, ecn = 3, hop_limit = 255, traffic_class = 255,
	flow_label = 1048575 }

-- Built errors quoting a whole UDP header (so address writes move the
-- quoted UDP checksum too), besides the captures.
local function built(outer_hex, inner)
	local ipkt = packet.from_string(inner); assert(ipkt:fix_checksums())
	local bytes = T.unhex(outer_hex) .. ffi.string(ipkt:data(), ipkt:len())
	local v6 = bytes:byte(1) == 0x60
	local hdr = v6 and 40 or 20
	local len = #bytes
	bytes = v6 and (bytes:sub(1, 4) .. string.char(math.floor((len - 40) / 256), (len - 40) % 256) .. bytes:sub(7))
		or (bytes:sub(1, 2) .. string.char(math.floor(len / 256), len % 256) .. bytes:sub(5))
	local pkt = packet.from_string(bytes); assert(pkt:fix_checksums())
	assert(hdr)
	return ffi.string(pkt:data(), pkt:len())
end
local BUILT = {
	-- ICMP port unreachable quoting IPv4/UDP
	built("45000000000000004001 0000 c6120002c6120001 03030000 00000000", UDP4),
	-- ICMPv6 packet too big quoting IPv6/UDP
	built("60000000 0000 3a 40 fd000198001800000000000000000002 fd000198001800000000000000000001" ..
		"02000000 00000500", UDP6),
}

local function each_error(fn)
	for i, b in ipairs(BUILT) do fn("built", i, b) end
	for name in io.popen("ls ../shared/pcaps"):lines() do
		if name:match("%.pcap$") then
			for rec in pf.records("../shared/pcaps/" .. name) do fn(name, rec.n, rec.ip) end
		end
	end
end

T.check("writes through an ICMP error's quoted packet keep the outer checksum", function ()
	local errors, writes, seen = 0, 0, {}
	each_error(function (name, n, ip)
		local rec = { ip = ip, n = n }
		do
				local pkt = packet.from_string(rec.ip)
				local ic = pkt:icmp() or pkt:icmpv6()
				if ic and ic:is_error() and ic:checksum_ok() and ic:inner() then
					errors = errors + 1
					seen[#seen + 1] = name .. "#" .. rec.n
					local list = ic.proto == 58 and WRITERS6 or WRITERS4
					for _, w in ipairs(list) do
						local p2 = packet.from_string(rec.ip)
						local ic2 = p2:icmp() or p2:icmpv6()
						local inner = ic2:inner()
						if inner and inner[w] then
							inner[w](inner, other(inner[w](inner), MAX[w]))
							writes = writes + 1
							if ic2:checksum_ok() ~= true then
								error(string.format("%s #%d: inner %s write broke the %s checksum",
									name, rec.n, w, ic.proto == 58 and "ICMPv6" or "ICMP"))
							end
						end
					end
				end
		end
	end)
	print("     " .. table.concat(seen, ", "))
	assert(errors >= 3, "ICMP errors found: " .. errors)
	print(string.format("     %d ICMP errors, %d quoted-field writes", errors, writes))
end)

T.done()

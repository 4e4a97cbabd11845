-- Views kept past their packet (issue 14, item 4): after the packet object
-- moves on (attach to the next packet, resize, append), a view it handed
-- out raises an error instead of reading or writing the next packet's bytes.
--   luajit tests/lua/stale_view_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"

-- two IPv4/UDP packets in two buffers, TTL 64 and 238
local A = T.unhex("45000020000040004011 0000 0a0000010a000002 03e80035000c0000 61626364")
local B = A:sub(1, 8) .. "\238" .. A:sub(10)
local function desc(s)
	local buf = ffi.new("uint8_t[?]", #s)
	ffi.copy(buf, s, #s)
	local d = ffi.new("struct ld_packet")
	d.data = buf; d.len = #s; d.cap = #s
	return d, buf
end
local da, ba = desc(A)
local db, bb = desc(B)

local function stale_error(fn)
	local ok, err = pcall(fn)
	T.eq(ok, false, "stale use raised")
	assert(tostring(err):find("view used after its packet", 1, true), tostring(err))
end

T.check("a kept IPv4 view does not read the next packet's TTL", function ()
	local pkt = packet.new()
	local ip = pkt:attach(da):ipv4()
	T.eq(ip:ttl(), 64, "ttl of the first packet")
	pkt:attach(db)
	stale_error(function () return ip:ttl() end)
	T.eq(pkt:ipv4():ttl(), 238, "a fresh view reads the second packet")
	T.eq(ip:ttl(), 238, "the recycled view, obtained again, is valid again")
end)

T.check("a write through a kept view does not land in another packet", function ()
	local pkt = packet.new()
	local u = pkt:attach(da):udp()
	pkt:attach(db)
	stale_error(function () u:dst_port(9) end)
	T.eq(bb[22] * 256 + bb[23], 53, "second packet's port untouched")
	T.eq(ba[22] * 256 + ba[23], 53, "first packet's port untouched")
end)

T.check("resize and append make held views stale", function ()
	local pk = packet.from_string(A, 100)
	local ip, u = pk:ipv4(), pk:udp()
	assert(pk:resize(40))
	stale_error(function () return ip:total_len() end)
	stale_error(function () return u:length() end)
	u = pk:udp()
	assert(pk:append("x"))
	stale_error(function () return u:src_port() end)
end)

T.check("ICMP inner views and TCP views are checked too", function ()
	-- ICMP port unreachable quoting the UDP packet A
	local icmp = T.unhex("4500003c000000004001 0000 0a0000020a000001 03030000 00000000") .. A
	local pk = packet.from_string(icmp)
	local ic = assert(pk:icmp())
	local inner = assert(ic:inner())
	T.eq(inner:ttl(), 64, "inner ttl")
	pk:attach(db)
	stale_error(function () return inner:ttl() end)
	stale_error(function () return ic:type() end)
end)

T.done()

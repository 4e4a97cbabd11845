-- Length and offset arguments that cross from a policy into packet memory
-- (issue 14, items 1 and 2): a negative, fractional, oversized or
-- string-overrunning length is a Lua error at the caller, never a crash or
-- a read past the source; no packet grows beyond what a verdict can carry.
--   luajit tests/lua/packet_args_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"

-- IPv4/UDP 10.0.0.1:1000 -> 10.0.0.2:53, payload "abc"
local UDP4 = T.unhex("4500001f000040004011 0000 0a0000010a000002 03e80035000b0000 616263")

local function fresh(cap)
	local pk = packet.from_string(UDP4, cap or 200)
	assert(pk:fix_checksums())
	return pk
end

-- fn must raise an error that names `what`, and leave the packet as it was.
local function refused(pk, what, fn, ...)
	local before = ffi.string(pk:data(), pk:len())
	local ok, err = pcall(fn, pk, ...)
	T.eq(ok, false, what .. " raised")
	assert(tostring(err):find(what, 1, true), "error names " .. what .. ": " .. tostring(err))
	T.eq(ffi.string(pk:data(), pk:len()), before, what .. ": bytes unchanged")
end

T.check("append: negative, fractional, too long lengths are errors", function ()
	local pk = fresh()
	refused(pk, "pkt:append", pk.append, "abc", -1)
	refused(pk, "pkt:append", pk.append, "abc", 1.5)
	refused(pk, "pkt:append", pk.append, "abc", 4)
	local buf = ffi.new("uint8_t[8]")
	refused(pk, "pkt:append", pk.append, buf, -4)
	refused(pk, "pkt:append", pk.append, buf, 0 / 0)
	refused(pk, "pkt:append", pk.append, buf, math.huge)
	refused(pk, "pkt:append", pk.append, nil, 4)
	assert(pk:append("xy", 1) and pk:len() == 32 and pk:data()[31] == 120)
end)

T.check("set_payload: negative or longer than the string is an error", function ()
	local pk = fresh()
	refused(pk, "pkt:set_payload", pk.set_payload, "ab", -1)
	refused(pk, "pkt:set_payload", pk.set_payload, "ab", 60)
	refused(pk, "pkt:set_payload", pk.set_payload, ffi.new("uint8_t[4]"), -1)
	assert(pk:set_payload("hello", 2) and pk:len() == 30 and pk:checksums_ok() == true)
end)

T.check("resize and constructors check their lengths", function ()
	local pk = fresh()
	refused(pk, "pkt:resize", pk.resize, -1)
	refused(pk, "pkt:resize", pk.resize, 0 / 0)
	assert(not pcall(packet.from_buffer, ffi.new("uint8_t[4]"), -1))
	assert(not pcall(packet.from_buffer, ffi.new("uint8_t[4]"), 2.5))
	assert(not pcall(packet.from_string, "abc", -5))
	assert(not pcall(packet.from_string, "abc", 1e10))
end)

T.check("a packet cannot grow past what a verdict carries (65531 bytes)", function ()
	T.eq(ffi.C.LD_PAYLOAD_MAX, 65531, "LD_PAYLOAD_MAX")
	local pk = packet.from_string(UDP4, 65531)
	T.eq(pk:cap(), 65531, "cap")
	local ok, why = pk:resize(65532)
	T.eq(ok, nil, "resize(65532)"); T.eq(why, "too big", "reason")
	assert(pk:resize(65531))
	ok, why = pk:append("x")
	T.eq(ok, nil, "append past 65531"); T.eq(why, "too big", "reason")
	-- a bigger buffer (a GSO packet) does not raise the limit
	local d = ffi.new("struct ld_packet")
	local mem = ffi.new("uint8_t[?]", 70000)
	ffi.copy(mem, UDP4, #UDP4)
	d.data = mem; d.len = #UDP4; d.cap = 70000
	local p2 = packet.new():attach(d)
	T.eq(p2:resize(65535), nil, "resize(65535) of a 70000-byte buffer")
	assert(p2:set_payload(string.rep("z", 65531 - 28)) and p2:len() == 65531)
	T.eq(p2:set_payload(string.rep("z", 65532 - 28)), nil, "set_payload to 65532 bytes")
end)

T.done()

-- The Lua half of fuzz/views_fuzz.c: every view accessor on the packet the
-- C side placed against a guard page, then writes through the views. A
-- pointer result outside the packet is an "out of range" error (a bug).
local dir = debug.getinfo(1, "S").source:match("^@(.*)/fuzz/[^/]*$") or "."
package.path = dir .. "/lua/?.lua;" .. dir .. "/lua/?/init.lua;" .. package.path
local ffi = require "ffi"
local packet = require "divert.packet"
require("divert").tune_jit()

local NEEDS_ARGS = { attach = true, ext_at = true, flag = true, sack_block = true, _write32 = true }
local METHODS = { [6] = require("divert.tcp").methods, [17] = require("divert.udp").methods,
	[1] = require("divert.icmp").methods, [58] = require("divert.icmp").methods,
	v4 = require("divert.ipv4").methods, v6 = require("divert.ipv6").methods }
local u8p = ffi.typeof("uint8_t *")
local desc_t = ffi.typeof("struct ld_packet *")
local pkt = packet.new()
local lo, hi

local function inside(p, len, what)
	local a = ffi.cast(u8p, p)
	if a < lo or a + len > hi or len < 0 then error(what .. ": out of range", 0) end
end

local function read_all(v, what)
	inside(v.p, v.len, what)
	if v.hlen > v.len then error(what .. ": hlen > len: out of range", 0) end
	local mt = METHODS[v.proto] or (v.ipver == 4 and METHODS.v4 or METHODS.v6)
	for name, fn in pairs(mt) do
		if not NEEDS_ARGS[name] then
			local r1, r2 = fn(v)
			if type(r1) == "cdata" and type(r2) == "number" then inside(r1, r2, what .. ":" .. name) end
		end
	end
	if v.proto == 6 then for i = 0, v:sack_count() + 1 do v:sack_block(i) end end
	if v.proto == 0 and v.ipver == 6 then for i = 1, v:ext_count() + 1 do v:ext_at(i) end end
end

return function (addr)
	local d = ffi.cast(desc_t, addr)
	lo, hi = d.data, d.data + d.len
	pkt:attach(d)
	local ip = pkt:ip()
	if ip then read_all(ip, "ip") end
	for _, get in ipairs { pkt.tcp, pkt.udp, pkt.icmp, pkt.icmpv6 } do
		local v = get(pkt)
		if v then
			read_all(v, "l4")
			if v.proto == 1 or v.proto == 58 then
				local inner = v:inner()
				if inner then read_all(inner, "inner"); inner:ttl(1) end
			end
		end
	end
	local p, n = pkt:payload()
	if p then inside(p, n, "payload") end
	pkt:checksums_ok()
	-- writes: through views, then whole-packet fixes
	ip = pkt:ip()
	if ip then
		if ip.ipver == 4 then ip:ttl(9); ip:src(0xc6120001) else ip:hop_limit(9); ip:dst("fd00:198:18::9") end
	end
	local t = pkt:tcp(); if t then t:dst_port(80); t:mss(1200); t:wscale(3) end
	local u = pkt:udp(); if u then u:src_port(53) end
	pkt:fix_checksums()
	if pkt:len() > 1 then pkt:resize(pkt:len() - 1); pkt:fix_lengths() end
end

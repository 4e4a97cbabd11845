-- divert.ipv4: a view of an IPv4 header.
--
--   local ip = pkt:ipv4()              -- or require("divert.ipv4").view(ptr, len)
--   if ip and ip:ttl() < 5 then ip:ttl(64) end   -- header checksum follows
--   ip:src(addr.ip4("198.18.0.1"))      -- NAT: IP and TCP/UDP checksums follow
--
-- Accessors read with no argument and write with one. Addresses are host
-- numbers (0..2^32-1), see divert.addr for parsing and formatting.
-- The view checks version, header length (>= 20, within the buffer) and the
-- total length; a datagram longer than the buffer is accepted as truncated
-- (ip:truncated()), so the quoted header inside an ICMP error can be read.
-- A total length of 0 (TSO / BIG TCP super-packets) means "the buffer".
local ffi = require "ffi"
local bit = require "bit"
local V = require "divert.view"
local checksum = require "divert.checksum"

local band, bor, rshift, lshift = bit.band, bit.bor, bit.rshift, bit.lshift
local rd16, rd32, wr16, wr32 = V.rd16, V.rd32, V.wr16, V.wr32
local modified, check_uint = V.modified, V.check_uint
local update16 = checksum.update16
local fold = checksum.fold

local M = {}
local ipv4 = {}

local view_t = V.define("ipv4", "", ipv4)
M.methods = ipv4   -- the view methods (for tests and extensions)

--- ipv4.new() -> a standalone view, not yet attached.
M.new = V.constructor(view_t, { ipver = 4, proto = 0, dstoff = 16 })

--- v:attach(ptr, len) -> v, or nil and a reason.
function ipv4:attach(p, len)
	if len < 20 then return nil, "truncated" end
	if rshift(p[0], 4) ~= 4 then return nil, "not ipv4" end
	local hlen = lshift(band(p[0], 15), 2)          -- (shifts keep it an integer)
	if hlen < 20 then return nil, "bad header length" end
	if hlen > len then return nil, "truncated" end
	local tot = rd16(p, 2)
	local whole = 1
	if tot == 0 then
		tot = len  -- TSO/BIG TCP: the length lives in the skb, not the header
	elseif tot < hlen then
		return nil, "bad total length"
	elseif tot > len then
		tot = len; whole = 0
	end
	-- (ipver, proto and dstoff are set once, by the constructor)
	self.p = p; self.ip = p; self.len = tot; self.hlen = hlen; self.l4proto = p[9]
	self.gen = self.pk.gen
	self.l4off = hlen; self.l4len = tot - hlen; self.l4why = 0
	local fo = rd16(p, 6)
	self.frag = band(fo, 0x1fff) ~= 0 and 1 or 0
	-- the transport checksum covers the whole datagram: not computable
	-- from a truncated buffer or from one fragment
	if band(fo, 0x3fff) ~= 0 then whole = 0 end
	self.whole = whole
	if self.frag ~= 0 then self.l4why = V.FRAGMENT end
	return self
end

--- ipv4.view(ptr, len) -> a new view attached to ptr, or nil and a reason.
function M.view(p, len)
	return M.new():attach(p, len)
end

-- A header word changed: fix the header checksum, mark modified.
local function hdr_changed(self, old, new)
	local p = self.p
	wr16(p, 10, update16(rd16(p, 10), old, new))
	modified(self)
end

function ipv4:version() return 4 end
function ipv4:hdr_len() return self.hlen end
--- total length as the header says it (0 for TSO super-packets)
function ipv4:total_len(v)
	local p = self.p
	if v == nil then return (rd16(p, 2)) end
	check_uint(v, 65535, "ipv4:total_len")
	local old = rd16(p, 2); wr16(p, 2, v); hdr_changed(self, old, v)
end
function ipv4:truncated() return self.whole == 0 and self.frag == 0 and band(self.p[6], 0x20) == 0 end

local function byte_field(off, mask, shift, max, name)
	return function (self, v)
		local p = self.p
		if v == nil then return (rshift(band(p[off], mask), shift)) end
		check_uint(v, max, name)
		local w = band(off, 0xfffe)
		local old = rd16(p, w)
		p[off] = bor(band(p[off], bit.bnot(mask)), lshift(v, shift))
		hdr_changed(self, old, rd16(p, w))
	end
end
ipv4.tos  = byte_field(1, 0xff, 0, 255, "ipv4:tos")
ipv4.dscp = byte_field(1, 0xfc, 2, 63, "ipv4:dscp")
ipv4.ecn  = byte_field(1, 0x03, 0, 3, "ipv4:ecn")
ipv4.ttl  = byte_field(8, 0xff, 0, 255, "ipv4:ttl")

function ipv4:id(v)
	local p = self.p
	if v == nil then return (rd16(p, 4)) end
	check_uint(v, 65535, "ipv4:id")
	local old = rd16(p, 4); wr16(p, 4, v); hdr_changed(self, old, v)
end

--- flags as the 3-bit field (0x2 = DF, 0x1 = MF); df()/mf() as booleans
function ipv4:flags() return (rshift(self.p[6], 5)) end
function ipv4:df(on)
	local p = self.p
	if on == nil then return band(p[6], 0x40) ~= 0 end
	local old = rd16(p, 6)
	p[6] = on and bor(p[6], 0x40) or band(p[6], 0xbf)
	hdr_changed(self, old, rd16(p, 6))
end
function ipv4:mf() return band(self.p[6], 0x20) ~= 0 end
--- fragment offset in bytes
function ipv4:frag_offset() return band(rd16(self.p, 6), 0x1fff) * 8 end
--- a fragment of a larger datagram (first or later)
function ipv4:is_fragment() return band(rd16(self.p, 6), 0x3fff) ~= 0 end

function ipv4:protocol(v)
	local p = self.p
	if v == nil then return p[9] end
	check_uint(v, 255, "ipv4:protocol")
	local old = rd16(p, 8); p[9] = v; hdr_changed(self, old, rd16(p, 8))
	self.l4proto = v
end

ipv4.checksum = V.raw16(10, "ipv4:checksum")

--- ip:checksum_ok() -> true when the header checksum is right
function ipv4:checksum_ok() return checksum.partial(self.p, self.hlen) == 65535 end
--- ip:fix_checksum(): recompute the header checksum
function ipv4:fix_checksum()
	local c = checksum.ipv4_header(self.p)
	wr16(self.p, 10, c); modified(self)
end

local function addr_field(off, name)
	local addr
	return function (self, v)
		local p = self.p
		if v == nil then return (rd32(p, off)) end
		if type(v) == "string" then
			addr = addr or require "divert.addr"
			local a = addr.ip4(v)
			if not a then error(name .. ": not an IPv4 address: " .. v, 2) end
			v = a
		end
		check_uint(v, 4294967295, name)
		local old = rd32(p, off)
		wr32(p, off, v)
		local os = fold(old % 65536 + (old - old % 65536) / 65536)
		local ns = fold(v % 65536 + (v - v % 65536) / 65536)
		wr16(p, 10, checksum.adjust(rd16(p, 10), os, ns))
		modified(self)
		-- nothing to box if the transport checksum must be completed
		p = nil  -- luacheck: ignore 311
		V.pseudo_changed(self, os, ns)
	end
end
--- src/dst as host numbers; writing updates the header checksum and the
-- TCP/UDP checksum (their pseudo-header covers the addresses)
ipv4.src = addr_field(12, "ipv4:src")
ipv4.dst = addr_field(16, "ipv4:dst")

--- ip:options() -> ptr, len of the options area (len 0 when none)
function ipv4:options() return self.p + 20, self.hlen - 20 end

--- ip:option(kind) -> offset from the header start and length of the first
-- option of that kind, or nil (absent or malformed option list)
ipv4.option = V.option

--- ip:payload() -> ptr, len of what follows the header (within the buffer)
function ipv4:payload() return self.p + self.hlen, self.len - self.hlen end

function ipv4:src_str() return require("divert.addr").format4(rd32(self.p, 12)) end
function ipv4:dst_str() return require("divert.addr").format4(rd32(self.p, 16)) end

function M.selftest()
	-- 192.168.0.1 -> 192.168.0.199, UDP, ttl 64, checksum 0xb861
	local h = ffi.new("uint8_t[24]", { 0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11,
		0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0, 0, 0, 0 })
	wr16(h, 10, checksum.ipv4_header(h))
	local ip = assert(M.view(h, 24))
	assert(ip:ttl() == 64 and ip:protocol() == 17 and ip:src() == 0xc0a80001 and ip:dst() == 0xc0a800c7)
	assert(ip:df() and not ip:mf() and not ip:is_fragment() and ip:total_len() == 24 and ip:hdr_len() == 20)
	assert(ip:checksum_ok())
	ip:ttl(3); ip:tos(0xb8); ip:dst(0x0a000001); ip:id(7); ip:df(false)
	assert(ip:ttl() == 3 and ip:dscp() == 46 and ip:ecn() == 0 and ip:dst() == 0x0a000001 and ip:id() == 7)
	assert(ip:checksum_ok(), "incremental header checksum")
	assert(not pcall(ipv4.ttl, ip, 256))
	assert(M.view(h, 19) == nil and M.view(h, 23) ~= nil)
	h[0] = 0x44; assert(M.view(h, 24) == nil)
end

V.guard(ipv4)   -- the generation check of every method (see divert.view)

return M

-- divert.udp: a view of a UDP header.
--
--   local udp = pkt:udp()
--   if udp and udp:dst_port() == 53 then return divert.DROP end
--
-- The length field must be 0 (UDP GSO / jumbo: "the buffer"), or 8..the
-- bytes the IP layer gives it; a shorter field (padding after the datagram)
-- bounds the payload. Writes keep the checksum right; a UDP/IPv4 checksum of
-- 0 ("none") stays 0.
local ffi = require "ffi"
local V = require "divert.view"
local checksum = require "divert.checksum"

local rd16, wr16 = V.rd16, V.wr16
local check_uint, l4_changed, set16 = V.check_uint, V.l4_changed, V.set16

local M = {}
local udp = {}
local view_t = V.define("udp", "", udp)
M.methods = udp   -- the view methods (for tests and extensions)

M.new = V.constructor(view_t, { proto = 17, hlen = 8 })

--- v:attach(ptr, len [, ip, ipver, whole]) -> v, or nil and a reason.
function udp:attach(p, len, ip, ipver, whole, dstoff)
	if len < 8 then return nil, "truncated" end
	local ulen = rd16(p, 4)
	-- a field longer than the datagram is broken, unless what is short is
	-- the buffer (a truncated packet, or a first fragment)
	local strict = whole == nil or (whole ~= 0 and ip ~= nil)
	if ulen ~= 0 then
		if ulen < 8 then return nil, "bad length field" end
		if ulen > len then
			if strict then return nil, "bad length field" end
		else
			len = ulen
		end
	end
	self.p = p; self.len = len
	self.gen = self.pk.gen
	V.set_ip(self, ip, ipver, whole, dstoff)
	return self
end

function M.view(p, len, ip, ipver)
	return M.new():attach(p, len, ip, ipver)
end

function udp:src_port(v)
	if v == nil then return (rd16(self.p, 0)) end
	check_uint(v, 65535, "udp:src_port"); set16(self, 0, v)
end
function udp:dst_port(v)
	if v == nil then return (rd16(self.p, 2)) end
	check_uint(v, 65535, "udp:dst_port"); set16(self, 2, v)
end
--- the length field (header + data); writing it also moves the view's end
-- (it cannot grow past the bytes the view has: resize the packet first)
function udp:length(v)
	if v == nil then return (rd16(self.p, 4)) end
	check_uint(v, 65535, "udp:length")
	-- the field appears twice in the sum: in the header and the pseudo-header
	local p = self.p
	local old = rd16(p, 4)
	wr16(p, 4, v)
	l4_changed(self, checksum.fold(old + old), checksum.fold(v + v))
end
udp.checksum = V.raw16(6, "udp:checksum")
function udp:hdr_len() return 8 end

--- udp:payload() -> ptr, len of the data
function udp:payload() return self.p + 8, self.len - 8 end

--- udp:checksum_ok() -> boolean (true for "no checksum" over IPv4), or nil
-- when it cannot be checked
function udp:checksum_ok()
	local c = rd16(self.p, 6)
	if c == 0 and self.ipver == 4 then return true end
	if self.whole == 0 then return nil end
	return checksum.l4(self.ip, self.ipver, self.p, self.len, 17, self.dstoff) == c
end

function M.selftest()
	local b = ffi.new("uint8_t[12]")
	wr16(b, 0, 5353); wr16(b, 2, 53); wr16(b, 4, 11); wr16(b, 6, 0x1234)
	local u = assert(M.view(b, 12))
	assert(u:src_port() == 5353 and u:dst_port() == 53 and u:length() == 11)
	local _, n = u:payload(); assert(n == 3)
	local s0 = checksum.partial(b, 12)
	u:dst_port(5300); u:src_port(1)
	assert(checksum.partial(b, 12) == s0 and u:dst_port() == 5300)
	wr16(b, 4, 7); assert(M.view(b, 12) == nil)
	wr16(b, 4, 13); assert(M.view(b, 12) == nil)
	assert(M.view(b, 7) == nil)
	wr16(b, 4, 0); assert(M.view(b, 12).len == 12)
end

V.guard(udp)   -- the generation check of every method (see divert.view)

return M

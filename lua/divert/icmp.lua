-- divert.icmp: views of ICMP (IPv4) and ICMPv6 messages.
--
--   local ic = pkt:icmp()                  -- pkt:icmpv6() for ICMPv6
--   if ic and ic:type() == 8 then print("ping", ic:id(), ic:seq()) end
--   if ic and ic:is_error() then
--     local inner = ic:inner()             -- the quoted IP header (a view)
--     local sport, dport = ic:inner_ports()
--   end
--
-- Both kinds share one view type; ic:proto() says which (1 or 58). Writes
-- keep the checksum right (ICMPv6 includes the IPv6 pseudo-header).
local ffi = require "ffi"
local V = require "divert.view"
local checksum = require "divert.checksum"
local ipv4 = require "divert.ipv4"
local ipv6 = require "divert.ipv6"

local rd16, rd32, wr16 = V.rd16, V.rd32, V.wr16
local check_uint, set16 = V.check_uint, V.set16

local M = {}
local icmp = {}
local view_t = V.define("icmp", "", icmp)
M.methods = icmp   -- the view methods (for tests and extensions)

-- Error messages quote the packet that caused them.
local ERR4 = { [3] = true, [4] = true, [5] = true, [11] = true, [12] = true }
M.TYPE = { ECHO_REPLY = 0, DEST_UNREACH = 3, REDIRECT = 5, ECHO_REQUEST = 8, TIME_EXCEEDED = 11,
	PARAM_PROBLEM = 12 }
M.TYPE6 = { DEST_UNREACH = 1, PACKET_TOO_BIG = 2, TIME_EXCEEDED = 3, PARAM_PROBLEM = 4,
	ECHO_REQUEST = 128, ECHO_REPLY = 129, NEIGHBOR_SOLICIT = 135, NEIGHBOR_ADVERT = 136 }

-- The inner views of each ICMP view, made on first use (weak: they go with it).
local inner4 = setmetatable({}, { __mode = "k" })
local inner6 = setmetatable({}, { __mode = "k" })
-- The ICMP view an inner view lies in (weak both ways).
local outer_of = setmetatable({}, { __mode = "kv" })

-- The quoted packet lies in the ICMP message, so the ICMP checksum covers
-- it: a write through an inner view (a field, the quoted header checksum it
-- fixes, the quoted transport checksum an address write fixes) must move
-- the outer checksum too. Inner views are of their own types, whose methods
-- are the IP view's methods plus that: the sum of the quoted bytes before
-- and after each call adjusts the outer checksum (no change, no write).
-- Only ICMP errors have inner views; their quoted part is small.
local fold, partial, adjust = checksum.fold, checksum.partial, checksum.adjust
local busy = false
local function inner_type(name, fields, methods)
	local wrapped = {}
	for k, f in pairs(methods) do
		if type(f) ~= "function" or k == "attach" then
			wrapped[k] = f
		else
			wrapped[k] = function (self, a, b, c)
				local ic = outer_of[self]
				-- (a method calling another: the outermost call accounts)
				if busy or not ic or ic.gen ~= ic.pk.gen then return f(self, a, b, c) end
				local q, n = ic.p + 8, ic.len - 8
				local old = fold(partial(q, n))
				busy = true
				local ok, r1, r2, r3 = pcall(f, self, a, b, c)
				busy = false
				local new = fold(partial(q, n))
				if new ~= old then
					wr16(ic.p, 2, adjust(rd16(ic.p, 2), old, new))
					V.modified(ic)
				end
				if not ok then error(r1, 0) end
				return r1, r2, r3
			end
		end
	end
	return V.define(name, fields, wrapped)
end
local new_inner4 = V.constructor(inner_type("icmp_inner4", "", ipv4.methods),
	{ ipver = 4, proto = 0, dstoff = 16 })
local ipv_attach = { [1] = ipv4.methods.attach, [58] = ipv6.methods.attach }
local new_inner6 = V.constructor(inner_type("icmp_inner6", ipv6.FIELDS, ipv6.methods),
	{ ipver = 6, proto = 0 })

M.new = V.constructor(view_t)

--- v:attach(ptr, len, proto [, ip, ipver, whole]) -> v, or nil and a
-- reason. proto is 1 (ICMP) or 58 (ICMPv6).
function icmp:attach(p, len, proto, ip, ipver, whole, dstoff)
	if len < 8 then return nil, "truncated" end
	self.p = p; self.len = len; self.hlen = 8; self.proto = proto
	self.gen = self.pk.gen
	V.set_ip(self, ip, ipver, whole, dstoff, proto == 58 and 6 or 4)
	return self
end

--- icmp.view(ptr, len [, proto]) -> standalone view (proto defaults to 1)
function M.view(p, len, proto, ip)
	return M.new():attach(p, len, proto or 1, ip)
end

function icmp:proto() return self.proto end
function icmp:type(v)
	local p = self.p
	if v == nil then return p[0] end
	check_uint(v, 255, "icmp:type")
	set16(self, 0, v * 256 + p[1])
end
function icmp:code(v)
	local p = self.p
	if v == nil then return p[1] end
	check_uint(v, 255, "icmp:code")
	set16(self, 0, p[0] * 256 + v)
end
icmp.checksum = V.raw16(2, "icmp:checksum")

local function is_echo(self)
	local t = self.p[0]
	if self.proto == 58 then return t == 128 or t == 129 end
	return t == 0 or t == 8 or t == 13 or t == 14
end
--- echo (and timestamp) identifier / sequence; nil for other messages
function icmp:id(v)
	if not is_echo(self) then return nil end
	if v == nil then return (rd16(self.p, 4)) end
	check_uint(v, 65535, "icmp:id"); set16(self, 4, v)
	return true
end
function icmp:seq(v)
	if not is_echo(self) then return nil end
	if v == nil then return (rd16(self.p, 6)) end
	check_uint(v, 65535, "icmp:seq"); set16(self, 6, v)
	return true
end

--- is this an error message (one that quotes a packet)?
function icmp:is_error()
	local t = self.p[0]
	if self.proto == 58 then return t >= 1 and t <= 4 end
	return ERR4[t] == true
end

--- the MTU of "fragmentation needed" (ICMP 3/4) and "packet too big" (ICMPv6 2)
function icmp:mtu()
	local p = self.p
	if self.proto == 58 then
		if p[0] == 2 then return (rd32(p, 4)) end
	elseif p[0] == 3 and p[1] == 4 then
		return (rd16(p, 6))
	end
	return nil
end
--- the pointer of a parameter problem message
function icmp:pointer()
	local p = self.p
	if self.proto == 58 then
		if p[0] == 4 then return (rd32(p, 4)) end
	elseif p[0] == 12 then
		return p[4]
	end
	return nil
end
--- the gateway of an ICMP redirect, as a host number
function icmp:gateway()
	if self.proto == 1 and self.p[0] == 5 then return (rd32(self.p, 4)) end
	return nil
end

--- icmp:inner() -> a view of the quoted IP header (ipv4 view for ICMP,
-- ipv6 for ICMPv6; read it like any IP view, it is usually truncated), or
-- nil and a reason. Writes through it mark the packet modified and keep
-- every checksum right: the quoted header's, the quoted transport
-- checksum after an address write, and the ICMP checksum around them.
function icmp:inner()
	if not self:is_error() then return nil, "not an error message" end
	local iv
	if self.proto == 58 then
		iv = inner6[self]
		if not iv then iv = new_inner6(); inner6[self] = iv end
	else
		iv = inner4[self]
		if not iv then iv = new_inner4(); inner4[self] = iv end
	end
	iv.pk = self.pk
	outer_of[iv] = self
	local v, why = ipv_attach[self.proto](iv, self.p + 8, self.len - 8)
	return v, why
end

--- icmp:inner_ports() -> source, destination port of the quoted TCP/UDP
-- header, or nil
function icmp:inner_ports()
	local iv = self:inner()
	if not iv or iv.frag ~= 0 or iv.l4why ~= 0 then return nil end
	local pr = iv.l4proto
	if pr ~= 6 and pr ~= 17 and pr ~= 132 then return nil end
	if iv.l4len < 4 then return nil end
	local q = iv.p + iv.l4off
	return rd16(q, 0), rd16(q, 2)
end

--- icmp:payload() -> ptr, len after the 8-byte header
function icmp:payload() return self.p + 8, self.len - 8 end
function icmp:hdr_len() return 8 end

--- icmp:checksum_ok() -> boolean, or nil when it cannot be checked
function icmp:checksum_ok()
	if self.whole == 0 then return nil end
	return checksum.l4(self.ip, self.ipver, self.p, self.len, self.proto, self.dstoff) == rd16(self.p, 2)
end

function M.selftest()
	-- echo request id 0x1234 seq 1, 4 bytes data
	local b = ffi.new("uint8_t[12]", { 8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4 })
	wr16(b, 2, checksum.finish(checksum.partial(b, 12)))
	local ic = assert(M.view(b, 12))
	assert(ic:type() == 8 and ic:code() == 0 and ic:id() == 0x1234 and ic:seq() == 1 and ic:checksum_ok())
	assert(not ic:is_error() and ic:inner() == nil and ic:mtu() == nil)
	ic:type(0); ic:seq(2)
	assert(ic:type() == 0 and ic:seq() == 2 and ic:checksum_ok(), "icmp incremental")
	assert(M.view(b, 7) == nil)
	-- fragmentation needed, quoting an IPv4/UDP header
	local e = ffi.new("uint8_t[36]", { 3, 4, 0, 0, 0, 0, 0x05, 0xdc,
		0x45, 0, 0, 0x30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x30, 0x39, 0, 53, 0, 0x1c, 0, 0 })
	ic = assert(M.view(e, 36))
	assert(ic:is_error() and ic:mtu() == 1500)
	local inner = assert(ic:inner())
	assert(inner:src() == 0x0a000001 and inner:protocol() == 17 and inner:truncated())
	local sp, dp = ic:inner_ports(); assert(sp == 12345 and dp == 53)
end

V.guard(icmp)   -- the generation check of every method (see divert.view)

return M

-- divert.ipv6: a view of an IPv6 header and its extension-header chain.
--
--   local ip6 = pkt:ipv6()            -- or require("divert.ipv6").view(ptr, len)
--   if ip6 and ip6:hop_limit() < 2 then return divert.DROP end
--   local off, len = ip6:ext(44)       -- the fragment header, if any
--
-- attach() walks hop-by-hop, routing, fragment, destination options, AH,
-- mobility, HIP and shim6 headers to the upper-layer header, bounded by the
-- buffer and by MAX_EXT headers (no loops: every header is >= 8 bytes and
-- the walk only moves forward). A broken chain leaves the fixed header
-- readable; pkt:tcp() and friends then say why (ip6:l4_error()).
-- Addresses are read as pointers to 16 bytes inside the packet (valid while
-- the packet is); divert.addr parses, formats and compares them.
local ffi = require "ffi"
local bit = require "bit"
local V = require "divert.view"
local checksum = require "divert.checksum"

local band, bor, rshift, lshift = bit.band, bit.bor, bit.rshift, bit.lshift
local rd16, rd32, wr16 = V.rd16, V.rd32, V.wr16
local modified, check_uint = V.modified, V.check_uint
local partial = checksum.partial

local MAX_EXT = 16    -- extension headers walked before giving up
local MAX_REC = 8     -- of those, recorded for ip6:ext()

local M = { MAX_EXT = MAX_EXT }
local ipv6 = {}

-- (M.FIELDS: divert.icmp defines a second view type with these fields for
-- the packet quoted in an ICMPv6 error)
M.FIELDS = [[
	uint8_t   n_ext;          /* extension headers recorded */
	uint8_t   frag_at;        /* index+1 of the fragment header in ext_*, 0 if none */
	uint8_t   ext_type[8];
	uint16_t  ext_off[8];     /* from the start of the IPv6 header */
	uint16_t  ext_len[8];
	uint32_t  frag_off;       /* offset of the fragment header from p, 0 if none */
]]
local view_t = V.define("ipv6", M.FIELDS, ipv6)
M.methods = ipv6   -- the view methods (for tests and extensions)

-- Which next-header values are extension headers we can walk over.
local EXT = ffi.new("uint8_t[256]")
for _, t in ipairs { 0, 43, 44, 60, 51, 135, 139, 140 } do EXT[t] = 1 end

M.new = V.constructor(view_t, { ipver = 6, proto = 0 })

-- One step of the extension-header walk: the header of type nh at off.
-- Returns the next type and offset, the count, whether the transport
-- checksum can still be computed (whole), and whether to go on.
local function ext_step(self, nh, off, n, stop, whole)
	if n >= MAX_EXT then self.l4why = V.TOO_MANY_EXT; return nh, off, n, whole, false end
	if nh == 0 and n > 0 then self.l4why = V.HBH_NOT_FIRST; return nh, off, n, whole, false end
	if off + 8 > stop then self.l4why = V.TRUNC_EXT; return nh, off, n, whole, false end
	local p = self.p
	local hl
	if nh == 44 then hl = 8
	elseif nh == 51 then hl = lshift(p[off + 1] + 2, 2)
	else hl = lshift(p[off + 1] + 1, 3) end
	if off + hl > stop then self.l4why = V.TRUNC_EXT; return nh, off, n, whole, false end
	if n < MAX_REC then
		self.ext_type[n] = nh; self.ext_off[n] = off; self.ext_len[n] = hl
		self.n_ext = n + 1
	end
	n = n + 1
	local next_nh = p[off]
	if nh == 43 and p[off + 3] > 0 then
		-- segments left: the transport checksum uses the final destination,
		-- the last address of type 0/2, or segment 0 of a segment routing header
		local rt = p[off + 2]
		if (rt == 0 or rt == 2) and hl >= 24 then
			self.dstoff = off + 8 + (rshift(p[off + 1], 1) - 1) * 16
		elseif rt == 4 and hl >= 24 then
			self.dstoff = off + 8
		end
	end
	if nh == 44 then
		self.frag_off = off
		if n <= MAX_REC then self.frag_at = n end
		whole = 0                   -- one fragment: no transport checksum
		if band(rd16(p, off + 2), 0xfff8) ~= 0 then
			-- a later fragment: what follows is data, not headers
			self.frag = 1; self.l4why = V.FRAGMENT
			return next_nh, off + hl, n, whole, false
		end
	end
	return next_nh, off + hl, n, whole, EXT[next_nh] == 1
end

--- v:attach(ptr, len) -> v, or nil and a reason (only when the fixed
-- header itself is unusable).
function ipv6:attach(p, len)
	if len < 40 then return nil, "truncated" end
	if rshift(p[0], 4) ~= 6 then return nil, "not ipv6" end
	local plen = rd16(p, 4)
	local stop = 40 + plen
	local whole = 1
	if plen == 0 then
		stop = len                    -- jumbogram / BIG TCP: length not in the header
	elseif stop > len then
		stop = len; whole = 0
	end
	self.p = p; self.ip = p; self.len = stop; self.hlen = 40
	self.gen = self.pk.gen
	self.frag = 0; self.l4why = 0
	self.n_ext = 0; self.frag_at = 0; self.frag_off = 0; self.dstoff = 24
	-- Up to four extension headers are walked without a loop (a loop that
	-- runs once or twice per packet never gets a trace of its own and
	-- drags its callers back to the interpreter); more take the loop.
	-- Nothing here keeps p: a pointer held in a slot when a loop's trace is
	-- entered would be boxed, i.e. allocated per packet.
	local nh, off, n = p[6], 40, 0
	p = nil  -- luacheck: ignore 311
	local more = EXT[nh] == 1
	if more then nh, off, n, whole, more = ext_step(self, nh, off, n, stop, whole) end
	if more then nh, off, n, whole, more = ext_step(self, nh, off, n, stop, whole) end
	if more then nh, off, n, whole, more = ext_step(self, nh, off, n, stop, whole) end
	if more then nh, off, n, whole, more = ext_step(self, nh, off, n, stop, whole) end
	while more do
		nh, off, n, whole, more = ext_step(self, nh, off, n, stop, whole)
	end
	self.hlen = off
	self.l4proto = nh; self.l4off = off; self.l4len = stop - off
	self.whole = self.l4why == 0 and whole or 0
	if self.l4why ~= 0 and self.frag == 0 then self.l4proto = 255 end
	return self
end

function M.view(p, len)
	return M.new():attach(p, len)
end

function ipv6:version() return 6 end
--- length of the fixed header plus the extension headers walked
function ipv6:hdr_len() return self.hlen end

-- version, class, flow label, hop limit: in no checksum, just mark modified
function ipv6:traffic_class(v)
	local p = self.p
	if v == nil then return (bor(lshift(band(p[0], 15), 4), rshift(p[1], 4))) end
	check_uint(v, 255, "ipv6:traffic_class")
	p[0] = bor(0x60, rshift(v, 4)); p[1] = bor(lshift(band(v, 15), 4), band(p[1], 15))
	modified(self)
end
function ipv6:dscp(v)
	if v == nil then return (rshift(self:traffic_class(), 2)) end
	check_uint(v, 63, "ipv6:dscp")
	self:traffic_class(bor(lshift(v, 2), band(self:traffic_class(), 3)))
end
function ipv6:ecn(v)
	if v == nil then return (band(self:traffic_class(), 3)) end
	check_uint(v, 3, "ipv6:ecn")
	self:traffic_class(bor(band(self:traffic_class(), 0xfc), v))
end
function ipv6:flow_label(v)
	local p = self.p
	if v == nil then return band(p[1], 15) * 65536 + rd16(p, 2) end
	check_uint(v, 0xfffff, "ipv6:flow_label")
	p[1] = bor(band(p[1], 0xf0), rshift(v, 16)); wr16(p, 2, band(v, 0xffff))
	modified(self)
end
--- payload length as the header says it (0 for jumbograms / BIG TCP)
ipv6.payload_len = V.raw16(4, "ipv6:payload_len")
--- the Next Header field of the fixed header
ipv6.next_header = V.raw8(6, "ipv6:next_header")
ipv6.hop_limit = V.raw8(7, "ipv6:hop_limit")
ipv6.ttl = ipv6.hop_limit

--- the upper-layer protocol after the extension headers (255 when the chain
-- is broken; see l4_error())
function ipv6:protocol() return self.l4proto end
--- why the transport header is unusable, or nil
function ipv6:l4_error()
	local w = self.l4why
	if w == 0 then return nil end
	return V.WHY[w]
end
function ipv6:truncated() return rd16(self.p, 4) ~= 0 and 40 + rd16(self.p, 4) > self.len end

--- src()/dst() -> pointer to the 16 address bytes in the packet.
-- Writing takes 16 bytes (uint8_t[16] from divert.addr, or a pointer) or
-- a string in text form; the transport checksum follows.
local function addr_field(off, name)
	local addr
	return function (self, v)
		local p = self.p
		if v == nil then return p + off end
		if type(v) == "string" then
			addr = addr or require "divert.addr"
			local a = addr.ip6(v)
			if not a then error(name .. ": not an IPv6 address: " .. v, 2) end
			v = a
		elseif type(v) ~= "cdata" then
			error(name .. ": expected 16 address bytes (cdata) or a string", 2)
		end
		local os = partial(p + off, 16)
		ffi.copy(p + off, v, 16)
		local ns = partial(p + off, 16)
		modified(self)
		-- with a routing header in transit, dst is not in the pseudo-header
		if off == 8 or off == self.dstoff then return (V.pseudo_changed(self, os, ns)) end
	end
end
ipv6.src = addr_field(8, "ipv6:src")
ipv6.dst = addr_field(24, "ipv6:dst")

function ipv6:src_str() return require("divert.addr").format6(self.p + 8) end
function ipv6:dst_str() return require("divert.addr").format6(self.p + 24) end

--- ip6:ext_count() -> number of extension headers recorded (<= 8)
function ipv6:ext_count() return self.n_ext end
--- ip6:ext_at(i) -> type, offset, length of the i-th (1-based) extension header
function ipv6:ext_at(i)
	if i < 1 or i > self.n_ext then return nil end
	return self.ext_type[i - 1], self.ext_off[i - 1], self.ext_len[i - 1]
end
--- ip6:ext(type) -> offset, length of the first extension header of that
-- type (0 hop-by-hop, 43 routing, 44 fragment, 60 dest. options, 51 AH)
function ipv6:ext(t)
	for i = 0, self.n_ext - 1 do
		if self.ext_type[i] == t then return self.ext_off[i], self.ext_len[i] end
	end
	return nil
end

--- fragment header fields (nil when there is none)
function ipv6:is_fragment() return self.frag_off ~= 0 end
function ipv6:frag_offset()
	local o = self.frag_off
	if o == 0 then return nil end
	return (band(rd16(self.p, o + 2), 0xfff8))
end
function ipv6:mf()
	local o = self.frag_off
	if o == 0 then return nil end
	return band(self.p[o + 3], 1) ~= 0
end
function ipv6:frag_id()
	local o = self.frag_off
	if o == 0 then return nil end
	return (rd32(self.p, o + 4))
end

--- ip6:payload() -> ptr, len after all extension headers
function ipv6:payload() return self.p + self.hlen, self.len - self.hlen end

function M.selftest()
	-- ::1 -> ::2, hop-by-hop (8) + dest options (8) + UDP (8 bytes)
	local b = ffi.new("uint8_t[64]")
	b[0] = 0x60; wr16(b, 4, 24); b[6] = 0; b[7] = 64
	b[23] = 1; b[39] = 2
	b[40] = 60; b[41] = 0          -- HBH -> dest opts
	b[48] = 17; b[49] = 0          -- dest opts -> UDP
	wr16(b, 56, 1000); wr16(b, 58, 53); wr16(b, 60, 8)
	local ip = assert(M.view(b, 64))
	assert(ip:protocol() == 17 and ip:hdr_len() == 56 and ip:ext_count() == 2 and ip:l4_error() == nil)
	assert(ip:ext(60) == 48 and ip:ext(0) == 40 and ip:ext(44) == nil and not ip:is_fragment())
	assert(ip.l4len == 8 and ip.whole == 1 and ip:hop_limit() == 64)
	-- truncate the chain: the fixed header stays readable
	ip = assert(M.view(b, 50))
	assert(ip:l4_error() == "truncated extension header" and ip:protocol() == 255)
	-- hop-by-hop in second place is malformed
	b[40] = 0; b[48] = 17
	assert(M.view(b, 64):l4_error() == "hop-by-hop header not first")
	ip = M.view(b, 64); ip:traffic_class(0xb8); ip:flow_label(0x12345)
	assert(ip:traffic_class() == 0xb8 and ip:dscp() == 46 and ip:flow_label() == 0x12345 and ip:version() == 6)
	assert(M.view(b, 39) == nil)
end

V.guard(ipv6)   -- the generation check of every method (see divert.view)

return M

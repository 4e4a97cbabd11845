-- divert.tcp: a view of a TCP header and its options.
--
--   local tcp = pkt:tcp()
--   if tcp and tcp:syn() and not tcp:flag("ack") then
--     local mss = tcp:mss()
--     if mss and mss > 1360 then tcp:mss(1360) end    -- MSS clamping
--   end
--
-- Ports, seq/ack, flags by name, window, urgent pointer; options MSS, window
-- scale, SACK-permitted, SACK blocks and timestamps are read and written in
-- place (a write changes an option that is there; it never adds one). Every
-- write keeps the TCP checksum right (RFC 1624 incremental update) and marks
-- the packet modified.
local ffi = require "ffi"
local bit = require "bit"
local V = require "divert.view"
local checksum = require "divert.checksum"

local band, bor, bnot, rshift = bit.band, bit.bor, bit.bnot, bit.rshift
local rd16, rd32, wr16, wr32 = V.rd16, V.rd32, V.wr16, V.wr32
local check_uint, l4_changed = V.check_uint, V.l4_changed
local set16, set32, set_ip = V.set16, V.set32, V.set_ip
local fold = checksum.fold

local M = {}
local tcp = {}
local view_t = V.define("tcp", [[
	uint8_t  optdone;      /* the options below were looked for */
	uint8_t  o_mss, o_ws, o_sackok, o_sack, o_ts;  /* option offsets, 0 = absent */
	uint8_t  l_sack;       /* length of the SACK option */
]], tcp)
M.methods = tcp   -- the view methods (for tests and extensions)

--- Flag bits by name (tcp:flag(name)).
local FLAGS = { fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10,
	urg = 0x20, ece = 0x40, cwr = 0x80 }
M.FLAGS = FLAGS

--- Option kinds.
M.OPT = { EOL = 0, NOP = 1, MSS = 2, WSCALE = 3, SACK_PERMITTED = 4, SACK = 5, TIMESTAMPS = 8 }

M.new = V.constructor(view_t, { proto = 6 })

--- v:attach(ptr, len [, ip, ipver, whole]) -> v, or nil and a reason.
-- len: bytes of the segment in the buffer; ip/ipver: the IP header in
-- front (for the pseudo-header; optional); whole: 0 when the segment is not
-- all in the buffer (no full checksum possible), default 1.
function tcp:attach(p, len, ip, ipver, whole, dstoff)
	if len < 20 then return nil, "truncated" end
	local hlen = band(rshift(p[12], 2), 0x3c)       -- data offset * 4, as an integer
	if hlen < 20 then return nil, "bad header length" end
	if hlen > len then return nil, "truncated" end
	self.p = p; self.len = len; self.hlen = hlen; self.optdone = 0
	self.gen = self.pk.gen
	set_ip(self, ip, ipver, whole, dstoff)
	return self
end

function M.view(p, len, ip, ipver)
	return M.new():attach(p, len, ip, ipver)
end

function tcp:src_port(v)
	if v == nil then return (rd16(self.p, 0)) end
	check_uint(v, 65535, "tcp:src_port"); set16(self, 0, v)
end
function tcp:dst_port(v)
	if v == nil then return (rd16(self.p, 2)) end
	check_uint(v, 65535, "tcp:dst_port"); set16(self, 2, v)
end
function tcp:seq(v)
	if v == nil then return (rd32(self.p, 4)) end
	check_uint(v, 4294967295, "tcp:seq"); set32(self, 4, v)
end
function tcp:ack(v)
	if v == nil then return (rd32(self.p, 8)) end
	check_uint(v, 4294967295, "tcp:ack"); set32(self, 8, v)
end
--- header length in bytes (data offset * 4)
function tcp:hdr_len() return self.hlen end
--- all flags as a number (FIN 0x01 .. CWR 0x80)
function tcp:flags(v)
	local p = self.p
	if v == nil then return p[13] end
	check_uint(v, 255, "tcp:flags")
	local old = rd16(p, 12)
	p[13] = v
	l4_changed(self, old, rd16(p, 12))
end
--- tcp:flag(name [, on]) -> boolean; name is fin syn rst psh ack urg ece cwr
function tcp:flag(name, on)
	local b = FLAGS[name]
	if not b then error("tcp:flag: unknown flag " .. tostring(name), 2) end
	local f = self.p[13]
	if on == nil then return band(f, b) ~= 0 end
	self:flags(on and bor(f, b) or band(f, bnot(b)))
end
function tcp:syn() return band(self.p[13], 0x02) ~= 0 end
function tcp:fin() return band(self.p[13], 0x01) ~= 0 end
function tcp:rst() return band(self.p[13], 0x04) ~= 0 end
function tcp:psh() return band(self.p[13], 0x08) ~= 0 end
function tcp:urg() return band(self.p[13], 0x20) ~= 0 end
function tcp:ece() return band(self.p[13], 0x40) ~= 0 end
function tcp:cwr() return band(self.p[13], 0x80) ~= 0 end
function tcp:window(v)
	if v == nil then return (rd16(self.p, 14)) end
	check_uint(v, 65535, "tcp:window"); set16(self, 14, v)
end
tcp.checksum = V.raw16(16, "tcp:checksum")
function tcp:urgent(v)
	if v == nil then return (rd16(self.p, 18)) end
	check_uint(v, 65535, "tcp:urgent"); set16(self, 18, v)
end

-- Folded sum of the 16-bit words (aligned to the header start) that hold
-- bytes [at, at+n): options need not be aligned, the checksum words are.
-- The header length is even, so the last word never leaves the header.
-- Written out for n <= 4 (at most three words): no loop.
local function span(p, at, n)
	local a = band(at, bnot(1))
	local last = at + n - 1
	local s = rd16(p, a)
	if a + 2 <= last then s = s + rd16(p, a + 2) end
	if a + 4 <= last then s = s + rd16(p, a + 4) end
	return (fold(s))
end

--- tcp:option(kind) -> offset (from the TCP header) and length of the
-- first option of that kind, or nil (absent, or the option list is broken)
tcp.option = V.option

-- Find the options we know in one walk per packet; the accessors below
-- then need no loop. Options with a wrong length count as absent.
-- The layouts Linux sends are recognised without a loop (a loop of two or
-- three rounds never gets a trace of its own and keeps its callers in the
-- interpreter): data segments with NOP NOP TS, and the usual SYN options.
local function scan(self)
	self.optdone = 1
	self.o_mss = 0; self.o_ws = 0; self.o_sackok = 0; self.o_sack = 0; self.o_ts = 0
	local hlen = self.hlen
	local p = self.p
	if hlen == 20 then return end
	if hlen == 32 and p[20] == 1 and p[21] == 1 and p[22] == 8 and p[23] == 10 then
		self.o_ts = 22; return                          -- NOP NOP TS
	end
	if hlen == 40 and p[20] == 2 and p[21] == 4 and p[24] == 4 and p[25] == 2 and p[26] == 8
			and p[27] == 10 and p[36] == 1 and p[37] == 3 and p[38] == 3 then
		self.o_mss = 20; self.o_sackok = 24; self.o_ts = 26; self.o_ws = 37
		return                                          -- MSS SACKOK TS NOP WS
	end
	p = nil  -- luacheck: ignore 311
	local o = 20
	while o < hlen do
		local k = self.p[o]
		if k == 0 then return end
		if k == 1 then
			o = o + 1
		else
			if o + 1 >= hlen then return end
			local l = self.p[o + 1]
			if l < 2 or o + l > hlen then return end
			if k == 2 and l == 4 and self.o_mss == 0 then self.o_mss = o
			elseif k == 3 and l == 3 and self.o_ws == 0 then self.o_ws = o
			elseif k == 4 and l == 2 and self.o_sackok == 0 then self.o_sackok = o
			elseif k == 5 and (l - 2) % 8 == 0 and self.o_sack == 0 then self.o_sack = o; self.l_sack = l
			elseif k == 8 and l == 10 and self.o_ts == 0 then self.o_ts = o end
			o = o + l
		end
	end
end

--- tcp:options() -> ptr, len of the options area
function tcp:options() return self.p + 20, self.hlen - 20 end

--- tcp:mss([v]) -> the MSS option value, or nil when there is none
function tcp:mss(v)
	if self.optdone == 0 then scan(self) end
	local o = self.o_mss
	if o == 0 then return nil end
	if v == nil then return (rd16(self.p, o + 2)) end
	check_uint(v, 65535, "tcp:mss")
	local p = self.p
	local before = span(p, o + 2, 2)
	wr16(p, o + 2, v)
	l4_changed(self, before, span(p, o + 2, 2))
	return true
end

--- tcp:wscale([v]) -> the window scale shift, or nil
function tcp:wscale(v)
	if self.optdone == 0 then scan(self) end
	local o = self.o_ws
	if o == 0 then return nil end
	local p = self.p
	if v == nil then return p[o + 2] end
	check_uint(v, 14, "tcp:wscale")
	local before = span(p, o + 2, 1)
	p[o + 2] = v
	l4_changed(self, before, span(p, o + 2, 1))
	return true
end

--- tcp:sack_permitted() -> boolean
function tcp:sack_permitted()
	if self.optdone == 0 then scan(self) end
	return self.o_sackok ~= 0
end

--- tcp:sack_count() -> number of SACK blocks (0 when no SACK option)
function tcp:sack_count()
	if self.optdone == 0 then scan(self) end
	if self.o_sack == 0 then return 0 end
	return (self.l_sack - 2) / 8
end
--- tcp:sack_block(i [, left, right]) -> left, right edge of block i (1-based)
function tcp:sack_block(i, left, right)
	if self.optdone == 0 then scan(self) end
	local o, l = self.o_sack, self.l_sack
	if o == 0 or i < 1 or i > (l - 2) / 8 then return nil end
	local at = o + 2 + (i - 1) * 8
	local p = self.p
	if left == nil then return rd32(p, at), rd32(p, at + 4) end
	check_uint(left, 4294967295, "tcp:sack_block"); check_uint(right, 4294967295, "tcp:sack_block")
	self:_write32(at, left); self:_write32(at + 4, right)
	return true
end

--- tcp:timestamps([tsval, tsecr]) -> tsval, tsecr, or nil when absent
function tcp:timestamps(tsval, tsecr)
	if self.optdone == 0 then scan(self) end
	local o = self.o_ts
	if o == 0 then return nil end
	local p = self.p
	if tsval == nil then return rd32(p, o + 2), rd32(p, o + 6) end
	check_uint(tsval, 4294967295, "tcp:timestamps"); check_uint(tsecr, 4294967295, "tcp:timestamps")
	self:_write32(o + 2, tsval); self:_write32(o + 6, tsecr)
	return true
end

-- Write a 32-bit value at any offset (options need not be aligned).
function tcp:_write32(at, v)
	local p = self.p
	local before = span(p, at, 4)
	wr32(p, at, v)
	l4_changed(self, before, span(p, at, 4))
end

--- tcp:payload() -> ptr, len of the data after the header
function tcp:payload() return self.p + self.hlen, self.len - self.hlen end

--- tcp:checksum_ok() -> boolean, or nil when it cannot be checked (no IP
-- header known, or the segment is not all in the buffer)
function tcp:checksum_ok()
	if self.whole == 0 then return nil end
	return checksum.l4(self.ip, self.ipver, self.p, self.len, 6, self.dstoff) == rd16(self.p, 16)
end

function M.selftest()
	local b = ffi.new("uint8_t[32]")
	wr16(b, 0, 40000); wr16(b, 2, 80); wr32(b, 4, 0xdeadbeef); b[12] = 0x80; b[13] = 0x02
	wr16(b, 14, 64240)
	-- options: MSS 1460, NOP, WS 7, SACK-permitted, 2 x NOP? fill 12 bytes
	local opt = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0 }
	for i, x in ipairs(opt) do b[19 + i] = x end
	local t = assert(M.view(b, 32))
	assert(t:src_port() == 40000 and t:dst_port() == 80 and t:seq() == 0xdeadbeef and t:hdr_len() == 32)
	assert(t:syn() and not t:flag("ack") and t:mss() == 1460 and t:wscale() == 7 and t:sack_permitted())
	assert(t:timestamps() == nil and t:sack_count() == 0)
	local sum0 = checksum.partial(b, 32)
	t:mss(1360); t:flag("ack", true); t:dst_port(8080); t:seq(1); t:wscale(2)
	assert(t:mss() == 1360 and t:flags() == 0x12 and t:dst_port() == 8080 and t:seq() == 1 and t:wscale() == 2)
	-- standalone: no pseudo-header; the incremental updates must keep the
	-- plain sum of the segment constant
	assert(checksum.partial(b, 32) == sum0, "incremental tcp updates")
	b[12] = 0x40; assert(M.view(b, 32) == nil)
	b[12] = 0x90; assert(M.view(b, 32) == nil)
end

V.guard(tcp)   -- the generation check of every method (see divert.view)

return M

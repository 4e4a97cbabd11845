-- divert.view: what the protocol views share (internal; policies use the
-- views through divert.packet or divert.ipv4/ipv6/tcp/udp/icmp).
--
-- A view is a small FFI struct laid over packet bytes after a bounds check:
-- p points at its header, len is how many bytes from p belong to the
-- datagram AND lie in the buffer, so every accessor may read p[0..hlen)
-- without another check. Views are preallocated and re-pointed per packet,
-- so looking at a packet allocates nothing.
--
-- Every write through a view marks the owning packet LD_SET_MODIFIED (the
-- core then sends the new bytes back). Standalone views belong to a dummy
-- packet, so the same code runs with or without a descriptor.
local ffi = require "ffi"
local bit = require "bit"
require "divert.abi"
local checksum = require "divert.checksum"

local band, bor, rshift = bit.band, bit.bor, bit.rshift
local floor = math.floor

ffi.cdef [[
/* A packet object (divert.packet): a descriptor plus the parse cache. */
struct divert_pkt {
	struct ld_packet *d;   /* the descriptor the object is attached to */
	int32_t  slot;         /* index of this object's views in divert.packet */
	int8_t   l3;           /* 0 not parsed yet, 4 or 6, -1 malformed */
	uint8_t  why;          /* reason code when l3 == -1 */
	uint8_t  csum_done;    /* CSUMNOTREADY packet whose L4 checksum we completed */
	uint8_t  pad;
	int32_t  gen;          /* bumped by attach and resize: older views are stale */
};
]]

-- The fields every view has; each protocol appends its own.
local VIEW_FIELDS = [[
	uint8_t  *p;           /* first byte of this header */
	uint8_t  *ip;          /* the IP header in front (pseudo-header), or NULL */
	struct divert_pkt *pk; /* owner: LD_SET_MODIFIED and checksum state */
	int32_t   len;         /* bytes from p to the end of the datagram, within the buffer */
	int32_t   hlen;        /* length of this header */
	int32_t   l4off;       /* IP views: transport header offset from p */
	int32_t   l4len;       /* IP views: transport segment bytes in the buffer */
	uint8_t   ipver;       /* 4 or 6 (the IP in front for transport views), 0 if unknown */
	uint8_t   l4proto;     /* IP views: upper-layer protocol number */
	uint8_t   frag;        /* IP views: a non-first fragment (no transport header) */
	uint8_t   whole;       /* the transport segment is complete in the buffer */
	uint8_t   l4why;       /* IP views: reason code why the transport part is unusable */
	uint8_t   proto;       /* transport views: protocol number (6, 17, 1, 58) */
	uint16_t  dstoff;      /* where in the IP header the pseudo-header's destination is */
	int32_t   gen;         /* pk.gen when attached: a view of an older packet is stale */
]]

local M = {}

--- view.define(name, extra_fields, methods) -> ctype of struct divert_<name>.
function M.define(name, extra, methods)
	ffi.cdef("struct divert_" .. name .. " {" .. VIEW_FIELDS .. (extra or "") .. "};")
	local ct = ffi.metatype("struct divert_" .. name, { __index = methods })
	return ct
end

-- Reasons for nil results. Stored as small codes in structs; the strings are
-- constants, so returning one allocates nothing.
M.WHY = {
	"truncated",                  -- 1
	"not ip",                     -- 2
	"bad header length",          -- 3
	"bad total length",           -- 4
	"truncated extension header", -- 5
	"too many extension headers", -- 6
	"hop-by-hop header not first",-- 7
	"fragment",                   -- 8
	"bad length field",           -- 9
	"no packet attached",         -- 10
}
M.TRUNCATED, M.NOT_IP, M.BAD_HLEN, M.BAD_TOTLEN, M.TRUNC_EXT, M.TOO_MANY_EXT,
	M.HBH_NOT_FIRST, M.FRAGMENT, M.BAD_LEN, M.NO_PACKET = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

local pkt_t = ffi.typeof("struct divert_pkt")
M.pkt_t = pkt_t

-- The owner of standalone views: a packet nobody reads. Both objects are
-- kept in the module table: structs point at them with raw pointers, which
-- do not keep anything alive (a collected dummy_desc was written to).
local dummy_desc = ffi.new("struct ld_packet")
local dummy_pkt = pkt_t()
dummy_pkt.d = dummy_desc
dummy_pkt.slot = -1
M.dummy_desc, M.dummy_pkt = dummy_desc, dummy_pkt

-- Big-endian field access. Byte loads: no alignment or endianness question.
-- Shifts, not "* 256": LuaJIT then keeps the arithmetic in integer
-- registers instead of converting every byte to a double.
local lshift = bit.lshift
local function rd16(p, o) return bor(lshift(p[o], 8), p[o + 1]) end
local function rd32(p, o)
	-- 0..2^32-1 as a number: the high half scaled, so no sign bit
	return bor(lshift(p[o], 8), p[o + 1]) * 65536 + bor(lshift(p[o + 2], 8), p[o + 3])
end
local function wr16(p, o, v) p[o] = rshift(v, 8); p[o + 1] = band(v, 255) end
local function wr32(p, o, v)
	p[o] = band(rshift(v, 24), 255); p[o + 1] = band(rshift(v, 16), 255)
	p[o + 2] = band(rshift(v, 8), 255); p[o + 3] = band(v, 255)
end
M.rd16, M.rd32, M.wr16, M.wr32 = rd16, rd32, wr16, wr32

local MODIFIED = ffi.C.LD_SET_MODIFIED
local NOTREADY = ffi.C.LD_PKT_CSUM_NOTREADY

--- view.modified(v): the bytes under v changed; tell the core.
local function modified(v)
	local d = v.pk.d
	d.set = bor(d.set, MODIFIED)
end
M.modified = modified

-- A packet the kernel queued with CHECKSUM_PARTIAL (CSUMNOTREADY) carries
-- only the pseudo-header sum in its transport checksum field; the device or
-- GSO would have finished it. But a verdict with a payload makes the kernel
-- (nfqnl_mangle) mark the skb CHECKSUM_NONE, so the bytes we send back must
-- carry the COMPLETE checksum. Like skb_checksum_help(), the first library
-- write to such a packet therefore computes the full checksum over the whole
-- segment; after that, incremental updates keep it right.
local function must_complete(pk)
	return band(pk.d.flags, NOTREADY) ~= 0 and pk.csum_done == 0
end
M.must_complete = must_complete

--- view.complete_l4(pk, ip, ipver, l4, l4len, proto, whole, dstoff)
local function complete_l4(pk, ip, ipver, l4, l4len, proto, whole, dstoff)
	if whole ~= 0 and ip ~= nil then
		pk.csum_done = 1
		-- (not a tail call: LuaJIT counts those against its loop-unroll
		-- limit; the pointers held here cost a box once per completed packet)
		checksum.fill_l4(ip, ipver, l4, l4len, proto, dstoff)
	end
end
M.complete_l4 = complete_l4

--- view.l4_changed(v, old_sum, new_sum): a transport view's bytes changed
-- (old_sum/new_sum: folded sums of the old and new 16-bit words); keep its
-- checksum right and mark the packet modified.
local update = checksum.adjust
local CSUM_OFF = checksum.CSUM_OFF
local function l4_changed(v, old_sum, new_sum)
	local pk = v.pk
	local d = pk.d
	d.set = bor(d.set, MODIFIED)
	if must_complete(pk) then
		complete_l4(pk, v.ip, v.ipver, v.p, v.len, v.proto, v.whole, v.dstoff)
		return
	end
	local proto = v.proto
	local off = proto == 6 and 16 or (proto == 17 and 6 or 2)   -- CSUM_OFF, without a table
	local p = v.p
	local hc = rd16(p, off)
	if proto == 17 and hc == 0 and v.ipver ~= 6 then return end  -- UDP/IPv4 sent without checksum
	hc = update(hc, old_sum, new_sum)
	if proto == 17 and hc == 0 then hc = 65535 end
	wr16(p, off, hc)
end
M.l4_changed = l4_changed

--- view.pseudo_changed(ipv, old_sum, new_sum): an IP view's address changed;
-- fix the transport checksum, whose pseudo-header covers the addresses.
function M.pseudo_changed(ipv, old_sum, new_sum)
	local proto = ipv.l4proto
	if ipv.frag ~= 0 or ipv.l4why ~= 0 then return end
	if not (proto == 6 or proto == 17 or (proto == 58 and ipv.ipver == 6)) then return end
	local off = CSUM_OFF[proto]
	if ipv.l4len < off + 2 then return end
	local pk = ipv.pk
	local l4 = ipv.p + ipv.l4off
	if must_complete(pk) then
		complete_l4(pk, ipv.p, ipv.ipver, l4, ipv.l4len, proto, ipv.whole, ipv.dstoff)
		return
	end
	local hc = rd16(l4, off)
	if proto == 17 and hc == 0 and ipv.ipver == 4 then return end
	hc = update(hc, old_sum, new_sum)
	if proto == 17 and hc == 0 then hc = 65535 end
	wr16(l4, off, hc)
end

--- view.constructor(ct [, fields]) -> function making a standalone view of
-- ctype ct (owned by the dummy packet until a packet object adopts it).
-- fields: values that never change for this kind of view (its protocol,
-- IP version...), set once here instead of on every attach.
function M.constructor(ct, fields)
	return function ()
		local v = ct()
		v.pk = dummy_pkt
		for k, x in pairs(fields or {}) do v[k] = x end
		return v
	end
end

--- view.set_ip(v, ip, ipver, whole, dstoff, default_ver): what a transport
-- view knows about the IP header in front of it (for its pseudo-header).
-- whole: nil or non-zero when the segment is all in the buffer.
function M.set_ip(v, ip, ipver, whole, dstoff, default_ver)
	v.ip = ip
	ipver = ipver or default_ver or 0
	v.ipver = ipver
	v.dstoff = dstoff or (ipver == 6 and 24 or 16)
	v.whole = (whole == nil or whole ~= 0) and (ip ~= nil or v.proto == 1) and 1 or 0
end

--- view.set16(v, off, new) / view.set32(v, off, new): write a big-endian
-- field of a transport view; its checksum follows.
function M.set16(v, o, new)
	local p = v.p
	local old = rd16(p, o)
	wr16(p, o, new)
	l4_changed(v, old, new)
end
function M.set32(v, o, new)
	local p = v.p
	local old = rd32(p, o)
	wr32(p, o, new)
	l4_changed(v, checksum.fold(old % 65536 + (old - old % 65536) / 65536),
	           checksum.fold(new % 65536 + (new - new % 65536) / 65536))
end

--- view.option(v, kind) -> offset and length of the first option of that
-- kind between byte 20 and v.hlen (IPv4 and TCP share the format: 0 ends
-- the list, 1 is a one-byte no-op, others carry a length >= 2), or nil when
-- absent or when the list is broken. Reads through v, not a pointer local
-- (a pointer held across the loop would be boxed, i.e. allocated).
function M.option(v, kind)
	local hlen = v.hlen
	local o = 20
	while o < hlen do
		local k = v.p[o]
		if k == 0 then return nil end
		if k == 1 then
			if kind == 1 then return o, 1 end
			o = o + 1
		else
			if o + 1 >= hlen then return nil end
			local l = v.p[o + 1]
			if l < 2 or o + l > hlen then return nil end
			if k == kind then return o, l end
			o = o + l
		end
	end
	return nil
end

--- view.raw16(off, name) / view.raw8(off, name) -> an accessor for a field
-- that no checksum covers (or that is a checksum): read, or write and mark
-- the packet modified.
function M.raw16(off, name)
	return function (self, v)
		local p = self.p
		if v == nil then return (rd16(p, off)) end
		M.check_uint(v, 65535, name)
		wr16(p, off, v); modified(self)
	end
end
function M.raw8(off, name)
	return function (self, v)
		local p = self.p
		if v == nil then return p[off] end
		M.check_uint(v, 255, name)
		p[off] = v; modified(self)
	end
end

-- A view kept past its packet (the next packet, pkt:resize(), the end of
-- the run) would read or write whatever lies at its old address now:
-- another packet's bytes. Every method but attach first compares the
-- view's generation with its packet's (two loads and a compare: within
-- the noise of build/bench/lua_lib_bench, see docs/api/packet.md).
local function stale(self)
	error("divert: view used after its packet changed (a view is valid until the next " ..
	      "packet, pkt:resize() or pkt:append() of its packet)", 3)
end

--- view.guard(methods): give every method of a view type (but attach) the
-- generation check. Called once per module, after its methods are defined.
-- Methods are wrapped with a fixed arity of four arguments: no view method
-- takes more (checked here).
function M.guard(methods)
	for k, f in pairs(methods) do
		if k ~= "attach" and type(f) == "function" then
			assert(debug.getinfo(f, "u").nparams <= 4 or debug.getinfo(f, "u").nparams == nil,
			       "view.guard: " .. k .. " takes more than 4 arguments")
			methods[k] = function (self, a, b, c)
				if self.gen ~= self.pk.gen then stale(self) end
				return f(self, a, b, c)
			end
		end
	end
end

--- view.reason(code) -> the reason string for a code.
function M.reason(code) return M.WHY[code] end

--- Argument checks for writers: misuse is an error at the caller's line.
function M.check_uint(v, max, what)
	if type(v) ~= "number" or not (v >= 0 and v <= max) or v ~= floor(v) then
		error(what .. ": expected an integer 0.." .. max .. ", got " .. tostring(v), 3)
	end
end

function M.selftest()
	local b = ffi.new("uint8_t[4]")
	wr32(b, 0, 0xc0a80001); assert(rd32(b, 0) == 0xc0a80001 and rd16(b, 2) == 1)
	wr16(b, 0, 0xbeef); assert(b[0] == 0xbe and b[1] == 0xef)
	assert(M.WHY[M.NO_PACKET] == "no packet attached")
end

return M

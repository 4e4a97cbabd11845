-- divert.packet: the packet object a policy receives.
--
--   local packet = require "divert.packet"
--   local pkt = packet.new()          -- once; the engine does this per worker
--   pkt:attach(desc)                  -- per packet: re-points, allocates nothing
--
--   local pkt = packet.from_string(bytes)   -- standalone (tests, replay)
--
-- It wraps a struct ld_packet (core/ld_abi.h): metadata accessors, the
-- policy-written side (mark, hold, duplicate, resize), and the protocol
-- views (pkt:ipv4() ... pkt:icmpv6()), parsed on first use and cached until
-- the next attach. Views are preallocated per packet object and recycled:
-- a view is valid until the next attach (or resize) of its packet.
local ffi = require "ffi"
local bit = require "bit"
local V = require "divert.view"
local checksum = require "divert.checksum"
local ipv4 = require "divert.ipv4"
local ipv6 = require "divert.ipv6"
local tcp = require "divert.tcp"
local udp = require "divert.udp"
local icmp = require "divert.icmp"

local band, bor, rshift, tobit = bit.band, bit.bor, bit.rshift, bit.tobit
local C = ffi.C
local WHY = V.WHY
local rd16, wr16 = V.rd16, V.wr16

ffi.cdef [[
char *if_indextoname(unsigned int ifindex, char *ifname);
struct divert_owned { struct ld_packet d; uint8_t buf[?]; };
]]

-- enum ld_packet_flag / ld_packet_set (core/ld_abi.h, through divert.abi),
-- read once into locals: no lookups per packet, and no number typed twice
local PKT_GSO, PKT_NOTREADY, PKT_UID, PKT_GID, PKT_CT, PKT_TRUNC = C.LD_PKT_GSO,
	C.LD_PKT_CSUM_NOTREADY, C.LD_PKT_HAS_UID, C.LD_PKT_HAS_GID, C.LD_PKT_HAS_CT,
	C.LD_PKT_TRUNCATED
local SET_MARK, SET_CT_MARK, SET_MODIFIED, SET_HOLD = C.LD_SET_MARK, C.LD_SET_CT_MARK,
	C.LD_SET_MODIFIED, C.LD_SET_HOLD
-- LD_PAYLOAD_MAX (65531): the most bytes a verdict can carry back (a
-- netlink attribute's 16-bit length minus its 4-byte header). A packet
-- cannot grow past it here, and the core refuses edits beyond it.
local MAX_LEN = ffi.C.LD_PAYLOAD_MAX

-- A length or offset argument: an integer in 0..max, else an error at the
-- caller's caller (the policy line that passed it).
local function check_len(n, max, what)
	if type(n) ~= "number" or not (n >= 0 and n <= max) or n % 1 ~= 0 then
		error(what .. ": expected an integer 0.." .. max .. ", got " .. tostring(n), 3)
	end
end

local M = {}
local P = {}                                 -- methods
local pkt_t = V.pkt_t
ffi.metatype(pkt_t, { __index = P })
local owned_t = ffi.typeof("struct divert_owned")

-- Per packet object, by slot: its views, and the memory a standalone
-- packet owns. Tables indexed by a small integer: no allocation on lookup.
local V4, V6, TCP, UDP, ICMP, ICMP6 = {}, {}, {}, {}, {}, {}
-- OWNED keeps the memory of standalone packets alive (written, never read)
local OWNED = {}  -- luacheck: ignore 241
local free_slots, nfree, nslots = {}, 0, 0

local VIEWS = { V4, V6, TCP, UDP, ICMP, ICMP6 }

-- The finalizer of a packet object (also run by lua_close): allocates
-- nothing, and gives the slot back.
local function release(pk)
	local s = pk.slot
	if s < 0 then return end
	pk.slot = -1
	for i = 1, #VIEWS do
		local v = VIEWS[i][s]
		if v then v.pk = V.dummy_pkt end  -- views that outlive the packet touch nothing
	end
	OWNED[s] = nil
	nfree = nfree + 1; free_slots[nfree] = s
end

--- packet.new() -> a packet object, not attached to anything yet.
function M.new()
	local pk = pkt_t()
	local s
	if nfree > 0 then
		s = free_slots[nfree]; free_slots[nfree] = nil; nfree = nfree - 1
	else
		nslots = nslots + 1; s = nslots
		V4[s], V6[s], TCP[s], UDP[s], ICMP[s], ICMP6[s] =
			ipv4.new(), ipv6.new(), tcp.new(), udp.new(), icmp.new(), icmp.new()
	end
	pk.slot = s
	pk.d = V.dummy_desc            -- an empty packet until attached: never NULL
	for i = 1, #VIEWS do VIEWS[i][s].pk = pk end
	return ffi.gc(pk, release)
end

--- pkt:attach(desc) -> pkt. desc is a struct ld_packet *. Resets the parse
-- cache; allocates nothing (the engine calls it once per packet).
function P.attach(self, desc)
	if desc == nil then error("pkt:attach: expected a struct ld_packet *, got nil", 2) end
	self.d = desc
	self.l3 = 0
	self.csum_done = 0
	self.gen = tobit(self.gen + 1)         -- views of the previous packet are stale
	return self
end

-- Standalone packets: own descriptor + buffer in one allocation.
local function owned(len, cap)
	if cap ~= nil then check_len(cap, 2147483647, "packet: cap") end
	cap = cap or len
	if cap < len then cap = len end
	if cap > MAX_LEN then cap = math.max(len, MAX_LEN) end
	local mem = owned_t(cap > 0 and cap or 1)
	local d = mem.d
	d.data = mem.buf; d.len = len; d.cap = cap; d.orig_len = len
	d.verdict = 1
	local pk = M.new()
	OWNED[pk.slot] = mem
	pk:attach(d)
	return pk, mem.buf
end

--- packet.from_string(s [, cap]) -> a standalone packet holding a copy of
-- the bytes of s, with room to grow to cap bytes (default #s).
function M.from_string(s, cap)
	if type(s) ~= "string" then error("packet.from_string: expected a string", 2) end
	local pk, buf = owned(#s, cap)
	ffi.copy(buf, s, #s)
	return pk
end

--- packet.from_buffer(ptr, len [, cap]) -> a standalone packet holding a
-- copy of ptr[0..len).
function M.from_buffer(p, len, cap)
	check_len(len, ffi.C.LD_PACKET_MAX, "packet.from_buffer: length")
	if p == nil and len > 0 then error("packet.from_buffer: NULL pointer", 2) end
	local pk, buf = owned(len, cap)
	ffi.copy(buf, p, len)
	return pk
end

--- packet.EMPTY: a descriptor of no bytes, to detach a packet object from
-- memory that is going away (pkt:attach(packet.EMPTY)).
M.EMPTY = V.dummy_desc

---------------------------------------------------------------- metadata
function P.id(self) return self.d.id end
--- pkt:hook() -> the netfilter hook: compare with divert.PREROUTING,
-- divert.INPUT, divert.FORWARD, divert.OUTPUT, divert.POSTROUTING
function P.hook(self) return self.d.hook end
local HOOK_NAMES = { [0] = "prerouting", "input", "forward", "output", "postrouting" }
--- pkt:hook_name() -> "prerouting" ... "postrouting" (nil for another value)
function P.hook_name(self) return HOOK_NAMES[self.d.hook] end
function P.hw_proto(self) return self.d.hw_proto end
function P.indev(self) return self.d.indev end
function P.outdev(self) return self.d.outdev end
function P.mark(self) return self.d.mark end
function P.ct_mark(self)
	local d = self.d
	if band(d.flags, PKT_CT) == 0 then return nil end
	return d.ct_mark
end
function P.ct_info(self)
	local d = self.d
	if band(d.flags, PKT_CT) == 0 then return nil end
	return d.ct_info
end
function P.uid(self)
	local d = self.d
	if band(d.flags, PKT_UID) == 0 then return nil end
	return d.uid
end
function P.gid(self)
	local d = self.d
	if band(d.flags, PKT_GID) == 0 then return nil end
	return d.gid
end
function P.gso(self) return band(self.d.flags, PKT_GSO) ~= 0 end
function P.csum_notready(self) return band(self.d.flags, PKT_NOTREADY) ~= 0 end
function P.truncated(self) return band(self.d.flags, PKT_TRUNC) ~= 0 end
function P.len(self) return self.d.len end
function P.cap(self) return self.d.cap end
function P.orig_len(self) return self.d.orig_len end
function P.data(self) return self.d.data end
--- receive time in ns (CLOCK_MONOTONIC, or capture time in replay)
function P.time(self) return (tonumber(self.d.tstamp_ns)) end

-- Interface names by ifindex, looked up once (a renamed interface keeps its
-- old name here until packet.flush_ifnames()).
local ifnames = {}
local namebuf = ffi.new("char[16]")   -- IF_NAMESIZE
local function ifname(idx)
	if idx == 0 then return nil end
	local n = ifnames[idx]
	if n == nil then
		if C.if_indextoname(idx, namebuf) ~= nil then n = ffi.string(namebuf) else n = false end
		ifnames[idx] = n
	end
	return n or nil
end
function P.indev_name(self) return (ifname(self.d.indev)) end
function P.outdev_name(self) return (ifname(self.d.outdev)) end
function M.flush_ifnames() ifnames = {} end

---------------------------------------------------------------- policy side
local function check_u32(v, what)
	if type(v) ~= "number" or v < 0 or v > 4294967295 or v % 1 ~= 0 then
		error(what .. ": expected an integer 0..2^32-1, got " .. tostring(v), 3)
	end
end

function P.set_mark(self, m)
	check_u32(m, "pkt:set_mark")
	local d = self.d
	d.new_mark = m; d.set = bor(d.set, SET_MARK)
end
function P.set_ct_mark(self, m)
	check_u32(m, "pkt:set_ct_mark")
	local d = self.d
	d.new_ct_mark = m; d.set = bor(d.set, SET_CT_MARK)
end
--- pkt:hold(ms): keep the packet queued ms milliseconds (fractions allowed),
-- then apply the verdict the handler returns.
function P.hold(self, ms)
	if type(ms) ~= "number" or ms < 0 or ms ~= ms or ms > 1e12 then
		error("pkt:hold: expected milliseconds >= 0, got " .. tostring(ms), 2)
	end
	local d = self.d
	d.hold_ns = ms * 1e6; d.set = bor(d.set, SET_HOLD)
end
--- pkt:duplicate(n): inject n extra copies after the verdict
function P.duplicate(self, n)
	if type(n) ~= "number" or n < 0 or n > 65535 or n % 1 ~= 0 then
		error("pkt:duplicate: expected an integer 0..65535, got " .. tostring(n), 2)
	end
	self.d.dup = n
end
--- pkt:modified(): the bytes were edited through pkt:data(); send them back
function P.modified(self)
	local d = self.d
	d.set = bor(d.set, SET_MODIFIED)
end

--- pkt:resize(n) -> true, or nil and a reason. Shrinks, or grows up to
-- min(cap, 65531) with zeroed bytes. Only the buffer length changes: IP and
-- UDP length fields are the policy's business (pkt:fix_lengths()).
function P.resize(self, n)
	if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
		error("pkt:resize: expected a length >= 0, got " .. tostring(n), 2)
	end
	local d = self.d
	local max = d.cap
	if max > MAX_LEN then max = MAX_LEN end
	if n > max then return nil, "too big" end
	local len = d.len
	if n > len then ffi.fill(d.data + len, n - len, 0) end
	d.len = n
	d.set = bor(d.set, SET_MODIFIED)
	self.l3 = 0                      -- views must be parsed again
	self.gen = tobit(self.gen + 1)         -- and the ones the policy holds are stale
	return true
end

--- pkt:append(src [, n]) -> true, or nil and a reason. src is a string or a
-- pointer (n bytes).
function P.append(self, src, n)
	if type(src) == "string" then
		n = n or #src
		check_len(n, #src, "pkt:append: n")
	elseif type(src) ~= "cdata" or type(n) ~= "number" then
		error("pkt:append: expected a string, or a pointer and a length", 2)
	else
		check_len(n, MAX_LEN, "pkt:append: n")
		if src == nil and n > 0 then error("pkt:append: NULL pointer", 2) end
	end
	local d = self.d
	local old = d.len
	local ok, err = self:resize(old + n)
	if not ok then return nil, err end
	ffi.copy(d.data + old, src, n)
	return true
end

---------------------------------------------------------------- views
-- Parse the IP header once per attach; the IP view keeps the results.
-- No pointer is kept in a local here: the IPv6 walk loops, and a pointer
-- held by any caller when a loop's trace is entered gets boxed (allocated).
-- Returns the IP view, or nil (self.why says why).
local function parse(self)
	if self.d.len < 1 then self.l3 = -1; self.why = V.TRUNCATED; return nil end
	local ver = rshift(self.d.data[0], 4)
	local v, why
	if ver == 4 then
		-- (the length as an int32, so the checks compare integers)
		v, why = V4[self.slot]:attach(self.d.data, tobit(self.d.len))
	elseif ver == 6 then
		v, why = V6[self.slot]:attach(self.d.data, tobit(self.d.len))
	else
		self.l3 = -1; self.why = V.NOT_IP; return nil
	end
	if not v then
		self.l3 = -1
		self.why = why == "truncated" and V.TRUNCATED or why == "bad total length" and V.BAD_TOTLEN or V.BAD_HLEN
		return nil
	end
	-- a packet the kernel gave only in part: no transport checksum can be
	-- computed, whatever the IP length fields say (they are 0 beyond 64 KiB)
	if band(self.d.flags, PKT_TRUNC) ~= 0 then v.whole = 0 end
	self.l3 = ver
	return v
end

local function ipview(self)
	local l3 = self.l3
	if l3 == 0 then return (parse(self)) end
	if l3 == 4 then return V4[self.slot] end
	if l3 == 6 then return V6[self.slot] end
	return nil
end

function P.ipv4(self)
	if self.l3 == 0 then parse(self) end
	local l3 = self.l3
	if l3 == 4 then return V4[self.slot] end
	if l3 < 0 then return nil, WHY[self.why] end
	return nil, "not ipv4"
end
function P.ipv6(self)
	if self.l3 == 0 then parse(self) end
	local l3 = self.l3
	if l3 == 6 then return V6[self.slot] end
	if l3 < 0 then return nil, WHY[self.why] end
	return nil, "not ipv6"
end
--- pkt:ip() -> the IPv4 or IPv6 view
function P.ip(self)
	local ip = ipview(self)
	if ip then return ip end
	return nil, WHY[self.why]
end

-- The transport part of the packet, or nil and a reason.
-- (No `return f()` tail calls on the per-packet path: LuaJIT counts them
-- against its loop-unroll limit, and a trace with more than 15 aborts.)
local function l4(self, proto)
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	if ip.l4proto ~= proto then
		if ip.l4why ~= 0 then return nil, WHY[ip.l4why] end
		return nil, "other protocol"
	end
	if ip.frag ~= 0 then return nil, "fragment" end
	return ip
end

function P.tcp(self)
	local ip, why = l4(self, 6)
	if not ip then return nil, why end
	local v, vwhy = TCP[self.slot]:attach(ip.p + ip.l4off, ip.l4len, ip.p, ip.ipver, ip.whole, ip.dstoff)
	return v, vwhy
end
function P.udp(self)
	local ip, why = l4(self, 17)
	if not ip then return nil, why end
	local v, vwhy = UDP[self.slot]:attach(ip.p + ip.l4off, ip.l4len, ip.p, ip.ipver, ip.whole, ip.dstoff)
	return v, vwhy
end
function P.icmp(self)
	local ip, why = l4(self, 1)
	if not ip then return nil, why end
	if ip.ipver ~= 4 then return nil, "other protocol" end
	local v, vwhy = ICMP[self.slot]:attach(ip.p + ip.l4off, ip.l4len, 1, ip.p, 4, ip.whole, ip.dstoff)
	return v, vwhy
end
function P.icmpv6(self)
	local ip, why = l4(self, 58)
	if not ip then return nil, why end
	if ip.ipver ~= 6 then return nil, "other protocol" end
	local v, vwhy = ICMP6[self.slot]:attach(ip.p + ip.l4off, ip.l4len, 58, ip.p, 6, ip.whole, ip.dstoff)
	return v, vwhy
end

--- pkt:l4proto() -> the transport protocol number (after IPv6 extension
-- headers), or nil and a reason
function P.l4proto(self)
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	return ip.l4proto
end

--- pkt:payload() -> ptr, len: the bytes after the transport header (TCP,
-- UDP, ICMP, ICMPv6), or after the IP headers for other protocols and for
-- non-first fragments; nil and a reason when the headers are broken.
function P.payload(self)
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	if ip.frag == 0 then
		local pr = ip.l4proto
		local v, why
		if pr == 6 then v, why = self:tcp()
		elseif pr == 17 then v, why = self:udp()
		elseif pr == 1 and ip.ipver == 4 then v, why = self:icmp()
		elseif pr == 58 and ip.ipver == 6 then v, why = self:icmpv6()
		elseif ip.l4why ~= 0 then return nil, WHY[ip.l4why]
		end
		if why then return nil, why end
		if v then return v.p + v.hlen, v.len - v.hlen end
	end
	return ip.p + ip.l4off, ip.l4len
end

--- pkt:fix_checksums() -> true, or nil and a reason.
-- Recomputes the IPv4 header checksum and the complete TCP/UDP/ICMP/ICMPv6
-- checksum from scratch (marks the packet modified). A complete checksum is
-- also what a CSUMNOTREADY packet needs once modified: the kernel marks a
-- re-injected payload CHECKSUM_NONE (nfqnl_mangle), so it will not finish
-- the partial sum for us; for GSO TCP the segmentation code rewrites it per
-- segment anyway. A UDP/IPv4 checksum of 0 ("none") stays 0 unless the
-- packet is CSUMNOTREADY. Fragments and truncated packets: only the IPv4
-- header is fixed, and the result is nil, "fragment" / "truncated".
function P.fix_checksums(self)
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	self.d.set = bor(self.d.set, SET_MODIFIED)
	if ip.ipver == 4 then
		local c = checksum.ipv4_header(ip.p)
		wr16(ip.p, 10, c)
	end
	if ip.l4why ~= 0 then return nil, WHY[ip.l4why] end
	if ip.whole == 0 then
		return nil, (band(self.d.flags, PKT_TRUNC) == 0 and (ip.frag ~= 0 or ip:is_fragment())) and "fragment" or "truncated"
	end
	local pr = ip.l4proto
	local off = checksum.CSUM_OFF[pr]
	if not off or (pr == 1 and ip.ipver ~= 4) or (pr == 58 and ip.ipver ~= 6) then return true end
	if ip.l4len < off + 2 then return nil, "truncated" end
	if pr == 17 and ip.ipver == 4 and rd16(ip.p, ip.l4off + 6) == 0 and band(self.d.flags, PKT_NOTREADY) == 0 then
		return true
	end
	self.csum_done = 1
	-- pointers go straight into the call (none kept in a local: see parse)
	checksum.fill_l4(ip.p, ip.ipver, ip.p + ip.l4off, ip.l4len, pr, ip.dstoff)
	return true
end

--- pkt:checksums_ok() -> true when the IPv4 header and transport checksums
-- are right; nil and a reason when they cannot be checked (CSUMNOTREADY,
-- fragments, truncation).
function P.checksums_ok(self)
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	if ip.ipver == 4 and not ip:checksum_ok() then return false end
	if ip.l4why ~= 0 then return nil, WHY[ip.l4why] end
	if band(self.d.flags, PKT_NOTREADY) ~= 0 and self.csum_done == 0 then return nil, "checksum not ready" end
	if ip.whole == 0 then return nil, "truncated" end
	local pr = ip.l4proto
	local v
	if pr == 6 then v = self:tcp() elseif pr == 17 then v = self:udp()
	elseif pr == 1 then v = self:icmp() elseif pr == 58 then v = self:icmpv6() end
	if not v then return true end
	return (v:checksum_ok())
end

--- pkt:fix_lengths() -> true, or nil and a reason: set the IPv4 total
-- length (and header checksum) or the IPv6 payload length, and the UDP
-- length, from the buffer length. For after pkt:resize()/append().
function P.fix_lengths(self)
	self.l3 = 0
	local d = self.d
	local p, len = d.data, d.len
	local ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	-- beyond 64 KiB (GSO / BIG TCP) the length fields hold 0, as the kernel's
	local tot = len <= 65535 and len or 0
	if ip.ipver == 4 then
		if rd16(p, 2) ~= tot then
			wr16(p, 2, tot)
			local c = checksum.ipv4_header(p)
			wr16(p, 10, c)
		end
	else
		wr16(p, 4, len - 40 <= 65535 and len - 40 or 0)
	end
	d.set = bor(d.set, SET_MODIFIED)
	self.l3 = 0
	ip = ipview(self)
	if not ip then return nil, WHY[self.why] end
	if ip.l4proto == 17 and ip.frag == 0 and ip.l4why == 0 and ip.l4len >= 8 then
		wr16(ip.p + ip.l4off, 4, ip.l4len <= 65535 and ip.l4len or 0)
	end
	return true
end

--- pkt:set_payload(src [, n]) -> true, or nil and a reason: replace what
-- follows the transport header with n bytes of src (string or pointer),
-- resizing the packet and fixing lengths and checksums.
function P.set_payload(self, src, n)
	if type(src) == "string" then
		n = n or #src
		check_len(n, #src, "pkt:set_payload: n")
	elseif type(src) ~= "cdata" or type(n) ~= "number" then
		error("pkt:set_payload: expected a string, or a pointer and a length", 2)
	else
		check_len(n, MAX_LEN, "pkt:set_payload: n")
		if src == nil and n > 0 then error("pkt:set_payload: NULL pointer", 2) end
	end
	local pp, plen = self:payload()
	if not pp then return nil, plen end
	local d = self.d
	local at = pp - d.data
	local ip = ipview(self)
	if ip.whole == 0 or ip.len ~= d.len then return nil, "truncated or padded packet" end
	local ok, err = self:resize(tonumber(at) + n)
	if not ok then return nil, err end
	ffi.copy(d.data + at, src, n)
	local ok2, err2 = self:fix_lengths()
	if not ok2 then return nil, err2 end
	return self:fix_checksums()
end

function M.selftest()
	-- IPv4/UDP 10.0.0.1:1000 -> 10.0.0.2:53, "abc"
	local hex = "4500001f000040004011" .. "0000" .. "0a0000010a000002" .. "03e80035000b0000" .. "616263"
	local s = hex:gsub("..", function (h) return string.char(tonumber(h, 16)) end)
	local pkt = M.from_string(s, 100)
	assert(pkt:len() == 31 and pkt:cap() == 100 and pkt:ipv4() and not pkt:ipv6())
	assert(pkt:fix_checksums() and pkt:checksums_ok() == true)
	local u = assert(pkt:udp())
	assert(u:dst_port() == 53 and pkt:tcp() == nil)
	local p, n = pkt:payload(); assert(n == 3 and p[0] == 97)
	u:dst_port(5353); pkt:ipv4():ttl(1); pkt:ipv4():src(0xc6120001)
	assert(pkt:checksums_ok() == true, "incremental updates keep checksums right")
	assert(pkt:set_payload("hello, world") and pkt:len() == 40 and pkt:checksums_ok() == true)
	assert(pkt:udp():length() == 20 and pkt:ipv4():total_len() == 40)
	assert(pkt:resize(101) == nil and pkt:resize(20) and pkt:udp() == nil)
	assert(band(pkt.d.set, SET_MODIFIED) ~= 0)
	pkt:set_mark(7); pkt:hold(1.5); pkt:duplicate(2)
	assert(pkt.d.new_mark == 7 and pkt.d.hold_ns == 1500000 and pkt.d.dup == 2 and pkt.d.set == 1 + 4 + 8)
	assert(not pcall(pkt.set_mark, pkt, -1) and not pcall(pkt.hold, pkt, "x"))
	assert(pkt:uid() == nil and pkt:ct_mark() == nil and pkt:indev_name() == nil)
	assert(M.from_string("\x99"):ip() == nil)
	-- a fresh object reads as an empty packet; attaching nil is misuse
	local fresh = M.new()
	assert(fresh:len() == 0 and fresh:ip() == nil and fresh:tcp() == nil and not pcall(fresh.attach, fresh, nil))
end

return M

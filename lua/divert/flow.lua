-- divert.flow: 5-tuple flow ids that work as Lua table keys.
--
--   local flow = require "divert.flow"
--   local flows = flow.table { size = 65536, bidirectional = true }
--   local bytes = {}
--   return function (pkt)
--     local id = flows:lookup(pkt)      -- a small integer, stable per flow
--     if id then bytes[id] = (bytes[id] or 0) + pkt:len() end
--     return divert.PASS
--   end
--
-- The key (family, protocol, addresses, ports; ICMP echo id as both ports)
-- is built in a preallocated FFI struct and hashed into an open-addressing
-- table of fixed size, so a lookup builds no string and allocates nothing.
-- Ids run from 1 to the table size; flows:sweep() frees idle ones.
local ffi = require "ffi"
local bit = require "bit"
local addr = require "divert.addr"

local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local C = ffi.C

ffi.cdef [[
int memcmp(const void *a, const void *b, size_t n);
struct divert_flowkey {
	uint8_t  a[16], b[16];   /* addresses; IPv4 in the first 4 bytes */
	uint16_t sport, dport;   /* host order; ICMP echo: the id in both */
	uint8_t  proto, fam, pad[2];
};
struct divert_flowent {
	struct divert_flowkey k;
	uint32_t state;          /* 0 empty, 1 in use, 2 deleted (keeps probe chains) */
	double   last;           /* time of the last lookup (pkt:time()), for sweep */
};
]]
local KEY_WORDS = 10                         -- sizeof(struct divert_flowkey) / 4
local key_t = ffi.typeof("struct divert_flowkey")
local ents_t = ffi.typeof("struct divert_flowent[?]")
local u32p = ffi.typeof("uint32_t *")
local KEYSZ = ffi.sizeof(key_t)
assert(KEYSZ == KEY_WORDS * 4)

local M = {}
local T = {}
T.__index = T

--- flow.table{ size = n, bidirectional = bool } -> a flow table holding up
-- to n flows (default 65536). bidirectional: both directions of a
-- connection get the same id.
function M.table(opts)
	opts = opts or {}
	local size = opts.size or 65536
	if type(size) ~= "number" or size < 1 or size > 2 ^ 26 then
		error("flow.table: size must be 1..2^26", 2)
	end
	local cap = 2
	while cap < size * 2 do cap = cap * 2 end  -- load factor <= 1/2
	return setmetatable({
		ents = ents_t(cap), mask = cap - 1, size = size, used = 0, tomb = 0,
		bidir = opts.bidirectional and true or false, key = key_t(),
	}, T)
end

-- xorshift mixing of the key's ten 32-bit words, written out: a loop here
-- would carry the word pointer across a trace boundary (an allocation)
local function mix(h, w)
	h = bxor(h, w)
	h = bxor(h, lshift(h, 13)); h = bxor(h, rshift(h, 17))
	return (bxor(h, lshift(h, 5)))
end
local function hash(k)
	local w = ffi.cast(u32p, k)
	local h = mix(0x2545f491, w[0])
	h = mix(h, w[1]); h = mix(h, w[2]); h = mix(h, w[3]); h = mix(h, w[4])
	h = mix(h, w[5]); h = mix(h, w[6]); h = mix(h, w[7]); h = mix(h, w[8])
	return (mix(h, w[9]))
end

local swap = ffi.new("uint8_t[16]")

-- Fill self.key from a packet; false when it has no usable IP header.
local function fill_key(self, pkt)
	local k = self.key
	local ip = pkt:ip()
	if not ip then return false end
	ffi.fill(k, KEYSZ)
	local p = ip.p
	local fam = ip.ipver
	k.fam = fam
	if fam == 4 then
		ffi.copy(k.a, p + 12, 4); ffi.copy(k.b, p + 16, 4)
	else
		ffi.copy(k.a, p + 8, 16); ffi.copy(k.b, p + 24, 16)
	end
	local pr = ip.l4proto
	k.proto = pr
	if ip.frag == 0 and ip.l4why == 0 and ip.l4len >= 8 then
		local q = p + ip.l4off
		if pr == 6 or pr == 17 or pr == 132 then
			k.sport = q[0] * 256 + q[1]; k.dport = q[2] * 256 + q[3]
		elseif (pr == 1 and (q[0] == 0 or q[0] == 8)) or (pr == 58 and (q[0] == 128 or q[0] == 129)) then
			local id = q[4] * 256 + q[5]
			k.sport = id; k.dport = id
		end
	end
	if self.bidir then
		-- one order for both directions: the smaller (address, port) first
		local c = C.memcmp(k.a, k.b, 16)
		if c > 0 or (c == 0 and k.sport > k.dport) then
			ffi.copy(swap, k.a, 16); ffi.copy(k.a, k.b, 16); ffi.copy(k.b, swap, 16)
			local sp = k.sport; k.sport = k.dport; k.dport = sp
		end
	end
	return true
end

-- Find the key: slot index if present; else nil and the first free slot.
-- The first probe is tried without a loop (it nearly always decides): a
-- loop that runs once per call never gets a trace of its own under LuaJIT
-- and keeps the code around it interpreted.
local function probe(self, k, i)
	local ents, mask = self.ents, self.mask
	local free = -1
	for _ = 0, mask do
		local e = ents[i]
		local st = e.state
		if st == 0 then
			if free < 0 then free = i end
			return nil, free
		elseif st == 1 then
			if C.memcmp(e.k, k, KEYSZ) == 0 then return i end
		elseif free < 0 then
			free = i
		end
		i = band(i + 1, mask)
	end
	return nil, free
end

local function find(self, k)
	local i = band(hash(k), self.mask)
	local e = self.ents[i]
	local st = e.state
	if st == 0 then return nil, i end
	if st == 1 and C.memcmp(e.k, k, KEYSZ) == 0 then return i end
	local at, free = probe(self, k, i)
	return at, free
end

--- flows:lookup(pkt) -> id, is_new; or nil and a reason ("full", or why
-- the packet has no IP header). Records pkt:time() for sweep().
function T:lookup(pkt)
	if not fill_key(self, pkt) then return nil, "no ip header" end
	local k = self.key
	local i, free = find(self, k)
	local now = pkt:time()
	if i then
		self.ents[i].last = now
		return i + 1, false
	end
	if self.used >= self.size or free < 0 then return nil, "full" end
	local e = self.ents[free]
	if e.state == 2 then self.tomb = self.tomb - 1 end
	ffi.copy(e.k, k, KEYSZ)
	e.state = 1; e.last = now
	self.used = self.used + 1
	return free + 1, true
end

--- flows:get(pkt) -> id of the packet's flow, or nil (nothing is added)
function T:get(pkt)
	if not fill_key(self, pkt) then return nil end
	local i = find(self, self.key)
	return i and i + 1 or nil
end

--- flows:remove(id): forget a flow (its id may be given to a new flow)
function T:remove(id)
	local e = self.ents[id - 1]
	if e.state == 1 then
		e.state = 2; self.used = self.used - 1; self.tomb = self.tomb + 1
	end
end

--- flows:count() -> flows in the table
function T:count() return self.used end

--- flows:sweep(now, idle [, fn]) -> removes flows not looked up since
-- now - idle (same unit as pkt:time(): ns), calling fn(id) first for each
function T:sweep(now, idle, fn)
	local ents = self.ents
	local n = 0
	for i = 0, self.mask do
		local e = ents[i]
		if e.state == 1 and e.last < now - idle then
			if fn then fn(i + 1) end
			self:remove(i + 1); n = n + 1
		end
	end
	return n
end

--- flows:describe(id) -> "proto a:port > b:port" (allocates; for logs)
function T:describe(id)
	local e = self.ents[id - 1]
	if e.state ~= 1 then return nil end
	local k = e.k
	local a, b
	if k.fam == 4 then
		a = addr.format4(((k.a[0] * 256 + k.a[1]) * 256 + k.a[2]) * 256 + k.a[3])
		b = addr.format4(((k.b[0] * 256 + k.b[1]) * 256 + k.b[2]) * 256 + k.b[3])
	else
		a = "[" .. addr.format6(k.a) .. "]"; b = "[" .. addr.format6(k.b) .. "]"
	end
	return string.format("%d %s:%d > %s:%d", k.proto, a, k.sport, b, k.dport)
end

function M.selftest()
	local packet = require "divert.packet"
	local function hex(h) return (h:gsub("..", function (x) return string.char(tonumber(x, 16)) end)) end
	-- UDP 10.0.0.1:1000 -> 10.0.0.2:53 and the reply
	local q = packet.from_string(hex("4500001c00004000401100000a0000010a00000203e8003500080000"))
	local r = packet.from_string(hex("4500001c00004000401100000a0000020a000001003503e800080000"))
	local f = M.table { size = 4, bidirectional = true }
	local id1, new1 = f:lookup(q)
	local id2, new2 = f:lookup(r)
	assert(id1 and new1 and id2 == id1 and not new2, "bidirectional")
	assert(f:describe(id1) == "17 10.0.0.1:1000 > 10.0.0.2:53" and f:count() == 1)
	local g = M.table { size = 2 }
	assert(g:lookup(q) ~= g:lookup(r) and g:count() == 2)
	assert(select(2, g:lookup(packet.from_string(hex("4500001c00004000400100000a0000030a0000040800000000010001")))) == "full")
	g:remove(g:get(q)); assert(g:count() == 1 and g:get(q) == nil and g:get(r))
	assert(g:sweep(1, 0) == 1 and g:count() == 0)
end

return M

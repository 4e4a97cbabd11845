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
-- Ids run from 1 to twice the table size (the slot of the flow, stable while
-- it lives); at most `size` flows at once; flows:sweep() frees idle ones.
-- key = "src" or "dst" keys flows by one address only (divert.shape's
-- per_flow = "src"/"dst" pipes share this table).
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

-- What a key holds (opts.key): the 5-tuple, or one address.
local KEY_5TUPLE, KEY_SRC, KEY_DST = 0, 1, 2
local KEYS = { ["5tuple"] = KEY_5TUPLE, src = KEY_SRC, dst = KEY_DST }

--- flow.table{ size = n, bidirectional = bool, key = "5tuple" } -> a flow
-- table holding up to n flows (default 65536). bidirectional: both
-- directions of a connection get the same id. key: "5tuple" (default),
-- "src" or "dst": one flow per source (destination) address, whatever the
-- protocol and ports.
function M.table(opts)
	opts = opts or {}
	local size = opts.size or 65536
	if type(size) ~= "number" or size < 1 or size > 2 ^ 26 then
		error("flow.table: size must be 1..2^26", 2)
	end
	local kmode = KEYS[opts.key or "5tuple"]
	if not kmode then error("flow.table: key must be \"5tuple\", \"src\" or \"dst\"", 2) end
	if kmode ~= KEY_5TUPLE and opts.bidirectional then
		error("flow.table: bidirectional needs key = \"5tuple\"", 2)
	end
	local cap = 2
	while cap < size * 2 do cap = cap * 2 end  -- load factor <= 1/2
	return setmetatable({
		ents = ents_t(cap), mask = cap - 1, size = size, used = 0, tomb = 0,
		bidir = opts.bidirectional and true or false, kmode = kmode, key = key_t(),
		-- opts._collide (tests): every key hashes to slot 0, so probe
		-- chains, removal and tombstones get exercised with a few flows
		hmask = opts._collide and 0 or cap - 1,
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
	local km = self.kmode
	if km ~= KEY_5TUPLE then
		-- one address: the other one, protocol and ports stay zero
		if km == KEY_SRC then ffi.fill(k.b, 16) else ffi.fill(k.a, 16) end
		return true
	end
	local pr = ip.l4proto
	k.proto = pr
	if ip.frag == 0 and ip.l4why == 0 and ip.l4len >= 8 then
		local q = p + ip.l4off
		if pr == 6 or pr == 17 or pr == 132 or pr == 136 then   -- TCP, UDP, SCTP, UDP-Lite
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
	local i = band(hash(k), self.hmask)
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
	local ents, mask = self.ents, self.mask
	local i = id - 1
	local e = ents[i]
	if e.state ~= 1 then return end
	e.state = 2; self.used = self.used - 1; self.tomb = self.tomb + 1
	-- A run of deleted slots just before an empty one ends every probe
	-- chain through it: make the run empty again, or a table with steady
	-- churn (divert.shape expires flows all the time) fills up with
	-- deleted slots and every miss walks the whole table.
	if ents[band(i + 1, mask)].state == 0 then
		while ents[i].state == 2 do
			ents[i].state = 0; self.tomb = self.tomb - 1
			i = band(i - 1, mask)
		end
	end
end

--- flows:key_hash(id) -> a 32-bit hash of the flow's key (the same for the
-- same flow in every run: divert.shape seeds per-flow randomness with it)
function T:key_hash(id)
	return (hash(self.ents[id - 1].k))
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
	-- one address per flow; colliding keys stay apart and removal keeps chains
	local s = M.table { size = 4, key = "src", _collide = true }
	local a = s:lookup(q)
	assert(s:lookup(packet.from_string(hex("4500001c00004000400100000a0000010a0000090800000000010001"))) == a)
	local b = s:lookup(r)
	assert(b ~= a and s:count() == 2 and s:key_hash(a) ~= s:key_hash(b))
	s:remove(a); assert(s:get(r) == b and s:get(q) == nil and s.tomb == 1)
	s:remove(b); assert(s:count() == 0 and s.tomb == 0, "trailing deleted slots emptied")
end

return M

-- divert.prefixset: longest-prefix match of addresses against thousands of
-- IPv4/IPv6 prefixes, for allow/deny lists.
--
--   local prefixset = require "divert.prefixset"
--   local deny = prefixset.new { "198.18.0.0/15", "2001:db8::/32" }
--   deny:add("10.0.0.0/8", "rfc1918")            -- any value; default true
--   local ip = pkt:ip()
--   if ip and deny:match_src(ip) then return divert.DROP end
--
-- A binary trie per family in flat FFI arrays: a lookup follows at most
-- one node per prefix bit (32 / 128 steps), reads no Lua strings and
-- allocates nothing. Adding is the slow part (do it at load time).
local ffi = require "ffi"
local bit = require "bit"
local addr = require "divert.addr"

local band, rshift = bit.band, bit.rshift
local i32arr = ffi.typeof("int32_t[?]")

local M = {}
local S = {}
S.__index = S

local function trie(cap)
	-- child[2*n], child[2*n+1]: next nodes (0 = none; node 0 is the root)
	-- val[n]: index into the values table (0 = no prefix ends here)
	return { child = i32arr(2 * cap), val = i32arr(cap), n = 1, cap = cap }
end

local function grow(t)
	local cap = t.cap * 2
	local child, val = i32arr(2 * cap), i32arr(cap)
	ffi.copy(child, t.child, 2 * t.cap * 4)
	ffi.copy(val, t.val, t.cap * 4)
	t.child, t.val, t.cap = child, val, cap
end

--- prefixset.new([list]) -> a set; list holds CIDR strings
function M.new(list)
	local s = setmetatable({ t4 = trie(64), t6 = trie(64), vals = {}, count = 0 }, S)
	if list then
		for _, c in ipairs(list) do
			local ok, err = s:add(c)
			if not ok then error("prefixset.new: " .. err, 2) end
		end
	end
	return s
end

-- Insert len bits (bitat(i) gives bit i, 0 = most significant).
local function insert(self, t, bitat, len, value)
	local node = 0
	for i = 0, len - 1 do
		local b = bitat(i)
		local slot = 2 * node + b
		local nx = t.child[slot]
		if nx == 0 then
			if t.n >= t.cap then grow(t) end
			nx = t.n; t.n = t.n + 1
			t.child[slot] = nx
		end
		node = nx
	end
	local vi = t.val[node]
	if vi == 0 then
		self.count = self.count + 1
		vi = #self.vals + 1
		t.val[node] = vi
	end
	self.vals[vi] = value
end

--- set:add(cidr [, value]) -> true, or nil and a reason
function S:add(cidr, value)
	if value == nil then value = true end
	local net, len, fam = addr.cidr(cidr)
	if not net then return nil, tostring(len) .. ": " .. tostring(cidr) end
	if fam == 4 then return self:add4(net, len, value) end
	return self:add6(net, len, value)
end

--- set:add4(net, len [, value]) / set:add6(bytes16, len [, value])
function S:add4(net, len, value)
	if value == nil then value = true end
	insert(self, self.t4, function (i) return band(rshift(net, 31 - i), 1) end, len, value)
	return true
end
function S:add6(net, len, value)
	if value == nil then value = true end
	insert(self, self.t6, function (i) return band(rshift(net[rshift(i, 3)], 7 - band(i, 7)), 1) end, len, value)
	return true
end

--- set:match4(n) -> the value of the longest prefix holding IPv4 number n, or nil
function S:match4(a)
	local t = self.t4
	local child, val = t.child, t.val
	local best = val[0]
	local node = 0
	for i = 31, 0, -1 do
		node = child[2 * node + band(rshift(a, i), 1)]
		if node == 0 then break end
		local v = val[node]
		if v ~= 0 then best = v end
	end
	if best == 0 then return nil end
	return self.vals[best]
end

--- set:match6(ptr) -> the value of the longest prefix holding the 16
-- address bytes at ptr, or nil
local a6 = ffi.new("uint8_t[16]")
function S:match6(p)
	-- walk a copy: a pointer argument live across the loop would be boxed
	ffi.copy(a6, p, 16)
	p = nil  -- luacheck: ignore 311
	local t = self.t6
	local child, val = t.child, t.val
	local best = val[0]
	local node = 0
	for i = 0, 127 do
		node = child[2 * node + band(rshift(a6[rshift(i, 3)], 7 - band(i, 7)), 1)]
		if node == 0 then break end
		local v = val[node]
		if v ~= 0 then best = v end
	end
	if best == 0 then return nil end
	return self.vals[best]
end

--- set:match(a) -> value or nil; a is an IPv4 number, 16 bytes (cdata) or
-- a text address (parsed on every call: not for the per-packet path)
function S:match(a)
	if type(a) == "number" then return (self:match4(a)) end
	if type(a) == "cdata" then return (self:match6(a)) end
	local v, fam = addr.parse(a)
	if not v then return nil end
	if fam == 4 then return (self:match4(v)) end
	return (self:match6(v))
end

--- set:match_src(ipview) / set:match_dst(ipview): match an IP view's
-- source / destination address (IPv4 or IPv6)
function S:match_src(ip)
	if ip.ipver == 4 then return (self:match4(ip:src())) end
	return (self:match6(ip.p + 8))
end
function S:match_dst(ip)
	if ip.ipver == 4 then return (self:match4(ip:dst())) end
	return (self:match6(ip.p + 24))
end

--- set:size() -> number of prefixes
function S:size() return self.count end

function M.selftest()
	local s = M.new { "10.0.0.0/8", "2001:db8::/32" }
	s:add("10.1.0.0/16", "ten-one"); s:add("0.0.0.0/0", "default4"); s:add("2001:db8:1::/48", 48)
	assert(s:match("10.1.2.3") == "ten-one" and s:match("10.2.0.0") == true and s:match("11.0.0.0") == "default4")
	assert(s:match(addr.ip4("10.1.255.255")) == "ten-one")
	assert(s:match("2001:db8:1::1") == 48 and s:match("2001:db8:2::1") == true and s:match("2001:db9::") == nil)
	assert(s:size() == 5 and not pcall(M.new, { "nonsense" }))
	-- many prefixes against a linear scan
	local t = M.new()
	local nets = {}
	local seed = 7
	local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
	for i = 1, 2000 do
		local len = 8 + rnd(25)
		local net = (rnd(65536) * 65536 + rnd(65536))
		net = net - net % 2 ^ (32 - len)
		nets[i] = { net, len }; t:add4(net, len, i)
	end
	for _ = 1, 2000 do
		local a = rnd(65536) * 65536 + rnd(65536)
		if rnd(2) == 0 then local n = nets[1 + rnd(#nets)]; a = n[1] + rnd(256) end
		local best, bestlen = nil, -1
		for i, n in ipairs(nets) do
			if n[2] > bestlen and addr.in4(a, n[1], n[2]) then best, bestlen = i, n[2] end
		end
		-- equal prefixes added twice keep the last value
		local got = t:match4(a)
		assert((got == nil) == (best == nil))
		if got then assert(nets[got][1] == nets[best][1] and nets[got][2] == nets[best][2]) end
	end
end

return M

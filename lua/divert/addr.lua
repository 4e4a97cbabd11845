-- divert.addr: parse and format IPv4/IPv6 addresses, CIDR prefixes, ports.
--
--   local addr = require "divert.addr"
--   local a = addr.ip4("198.18.0.1")        -- host number 0xc6120001
--   local b = addr.ip6("2001:db8::1")       -- uint8_t[16]
--   local net, len, fam = addr.cidr("10.0.0.0/8")
--   if addr.in4(ip:src(), net, len) then ... end
--   local web = addr.ports("80,443,8000-8999"); if web:has(tcp:dst_port()) ...
--
-- Parse once (at load time); the matchers (in4, in6, eq6, ports:has) work on
-- numbers and pointers and allocate nothing, so they fit the per-packet path.
local ffi = require "ffi"
local bit = require "bit"

local band, bor, rshift, lshift = bit.band, bit.bor, bit.rshift, bit.lshift
local C = ffi.C

ffi.cdef [[ int memcmp(const void *a, const void *b, size_t n); ]]

local M = {}
local a16_t = ffi.typeof("uint8_t[16]")

--- addr.ip4(s) -> host number, or nil and a reason ("a.b.c.d", each 0..255,
-- no leading zeros that would read as octal elsewhere)
function M.ip4(s)
	if type(s) ~= "string" then return nil, "not a string" end
	local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
	if not a then return nil, "not an IPv4 address" end
	local n = 0
	for _, x in ipairs { a, b, c, d } do
		if #x > 1 and x:sub(1, 1) == "0" then return nil, "leading zero in IPv4 address" end
		local v = tonumber(x)
		if v > 255 then return nil, "IPv4 address byte out of range" end
		n = n * 256 + v
	end
	return n
end

--- addr.format4(n) -> "a.b.c.d"
function M.format4(n)
	return string.format("%d.%d.%d.%d", band(rshift(n, 24), 255), band(rshift(n, 16), 255),
		band(rshift(n, 8), 255), band(n, 255))
end

--- addr.ip6(s) -> uint8_t[16], or nil and a reason (RFC 4291 text forms,
-- including "::" and a trailing dotted IPv4 part)
function M.ip6(s)
	if type(s) ~= "string" then return nil, "not a string" end
	if not s:find(":", 1, true) or s:find("[^%x:%.]") then return nil, "not an IPv6 address" end
	local head, tail = s, nil
	local dc = s:find("::", 1, true)
	if dc then
		if s:find("::", dc + 1, true) then return nil, "more than one '::'" end
		head, tail = s:sub(1, dc - 1), s:sub(dc + 2)
	end
	local function groups(part, allow_v4)
		local out = {}
		if part == "" then return out end
		local items = {}
		for g in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = g end
		for i, g in ipairs(items) do
			if g:find(".", 1, true) then
				if not allow_v4 or i ~= #items then return nil end
				local v4 = M.ip4(g)
				if not v4 then return nil end
				out[#out + 1] = rshift(v4, 16); out[#out + 1] = band(v4, 0xffff)
			else
				if #g < 1 or #g > 4 then return nil end
				out[#out + 1] = tonumber(g, 16)
			end
		end
		return out
	end
	local h = groups(head, tail == nil)
	local t = {}
	if tail then t = groups(tail, true) end
	if not h or not t then return nil, "not an IPv6 address" end
	local n = #h + #t
	if (dc and n > 7) or (not dc and n ~= 8) then return nil, "wrong number of groups" end
	local a = a16_t()
	for i, g in ipairs(h) do a[2 * i - 2] = rshift(g, 8); a[2 * i - 1] = band(g, 255) end
	for i, g in ipairs(t) do
		local k = 8 - #t + i
		a[2 * k - 2] = rshift(g, 8); a[2 * k - 1] = band(g, 255)
	end
	return a
end

--- addr.format6(ptr) -> the RFC 5952 text of 16 bytes at ptr
function M.format6(p)
	local g = {}
	for i = 0, 7 do g[i + 1] = p[2 * i] * 256 + p[2 * i + 1] end
	-- the longest run of two or more zero groups becomes "::"
	local best, bestlen, i = nil, 1, 1
	while i <= 8 do
		if g[i] == 0 then
			local j = i
			while j <= 8 and g[j] == 0 do j = j + 1 end
			if j - i > bestlen then best, bestlen = i, j - i end
			i = j
		else
			i = i + 1
		end
	end
	local function hex(a, b)
		local t = {}
		for k = a, b do t[#t + 1] = string.format("%x", g[k]) end
		return (table.concat(t, ":"))
	end
	if not best then return (hex(1, 8)) end
	return hex(1, best - 1) .. "::" .. hex(best + bestlen, 8)
end

--- addr.parse(s) -> value, family: a number and 4, or uint8_t[16] and 6
function M.parse(s)
	local v = M.ip4(s)
	if v then return v, 4 end
	local a = M.ip6(s)
	if a then return a, 6 end
	return nil, "not an IP address: " .. tostring(s)
end

--- addr.format(value [, family]) -> text of a number (IPv4) or 16 bytes
function M.format(v, fam)
	if type(v) == "number" and fam ~= 6 then return (M.format4(v)) end
	return (M.format6(v))
end

--- addr.mask4(len) -> the netmask of a prefix length as a host number
local function mask4(len)
	if len == 0 then return 0 end
	return (2 ^ 32 - 2 ^ (32 - len))
end
M.mask4 = mask4

--- addr.cidr(s) -> network, prefix length, family (4 or 6), or nil and a
-- reason. "10.1.2.3/8" gives 10.0.0.0 (host bits are cleared); a bare
-- address is a /32 or /128.
function M.cidr(s)
	if type(s) ~= "string" then return nil, "not a string" end
	local a, l = s:match("^([^/]+)/(%d+)$")
	if not a then a = s end
	local v, fam = M.parse(a)
	if not v then return nil, fam end
	local max = fam == 4 and 32 or 128
	local len = l and tonumber(l) or max
	if len > max then return nil, "prefix length out of range" end
	if fam == 4 then
		return (v - v % 2 ^ (32 - len)), len, 4
	end
	for i = 0, 15 do
		local keep = len - i * 8
		if keep <= 0 then v[i] = 0
		elseif keep < 8 then v[i] = band(v[i], lshift(0xff, 8 - keep)) end
	end
	return v, len, 6
end

--- addr.in4(a, net, len) -> does IPv4 number a lie in net/len?
function M.in4(a, net, len)
	local span = 2 ^ (32 - len)
	return a - a % span == net
end

--- addr.in6(ptr, net, len) -> do the 16 bytes at ptr lie in net/len?
function M.in6(p, net, len)
	local full = rshift(len, 3)
	if full > 0 and C.memcmp(p, net, full) ~= 0 then return false end
	local rest = band(len, 7)
	if rest == 0 then return true end
	local m = band(lshift(0xff, 8 - rest), 0xff)
	return band(p[full], m) == net[full]
end

--- addr.eq6(p, q) -> are the 16 bytes at p and q equal?
function M.eq6(p, q) return C.memcmp(p, q, 16) == 0 end

--- addr.port_range("lo-hi" | "port") -> lo, hi, or nil and a reason
function M.port_range(s)
	local lo, hi = tostring(s):match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
	if not lo then lo = tostring(s):match("^%s*(%d+)%s*$"); hi = lo end
	lo, hi = tonumber(lo), tonumber(hi)
	if not lo or lo > 65535 or hi > 65535 or lo > hi then return nil, "bad port range: " .. tostring(s) end
	return lo, hi
end

-- A set of ports: a 65536-bit bitmap, O(1) and allocation-free to test.
ffi.cdef [[ struct divert_portset { uint8_t bits[8192]; }; ]]
local portset = {}
ffi.metatype("struct divert_portset", { __index = portset })
--- ps:has(port) -> boolean
function portset:has(port)
	if port < 0 or port > 65535 then return false end
	return band(self.bits[rshift(port, 3)], lshift(1, band(port, 7))) ~= 0
end
--- ps:add(lo [, hi])
function portset:add(lo, hi)
	hi = hi or lo
	for p = lo, hi do
		local i = rshift(p, 3)
		self.bits[i] = bor(self.bits[i], lshift(1, band(p, 7)))
	end
	return self
end

--- addr.ports(spec) -> a port set, or nil and a reason. spec is a string
-- "22,80,8000-8999" or a list of numbers / range strings.
function M.ports(spec)
	local ps = ffi.new("struct divert_portset")
	local items = {}
	if type(spec) == "table" then
		items = spec
	elseif type(spec) == "string" then
		for it in spec:gmatch("[^,]+") do items[#items + 1] = it end
	elseif type(spec) == "number" then
		items = { spec }
	else
		return nil, "expected a string or a list of ports"
	end
	for _, it in ipairs(items) do
		local lo, hi = M.port_range(it)
		if not lo then return nil, hi end
		ps:add(lo, hi)
	end
	return ps
end

function M.selftest()
	assert(M.ip4("198.18.0.1") == 0xc6120001 and M.ip4("255.255.255.255") == 0xffffffff)
	assert(not M.ip4("1.2.3.256") and not M.ip4("1.2.3") and not M.ip4("01.2.3.4") and not M.ip4(" 1.2.3.4"))
	assert(M.format4(0xc6120001) == "198.18.0.1")
	local cases = {
		{ "::", "::" }, { "::1", "::1" }, { "2001:DB8::1", "2001:db8::1" },
		{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" }, { "fe80::1:2:3:4", "fe80::1:2:3:4" },
		{ "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8" }, { "::ffff:1.2.3.4", "::ffff:102:304" },
		{ "2001:db8::", "2001:db8::" }, { "1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7" },
	}
	for _, c in ipairs(cases) do
		local a = assert(M.ip6(c[1]), c[1])
		assert(M.format6(a) == c[2], c[1] .. " -> " .. M.format6(a))
	end
	for _, bad in ipairs { "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "1.2.3.4", ":::", "g::1",
			"1:2:3:4:5:6:7", "::1.2.3.4:5", "fe80::1%eth0" } do
		assert(M.ip6(bad) == nil, bad)
	end
	local net, len, fam = M.cidr("10.1.2.3/8")
	assert(net == 0x0a000000 and len == 8 and fam == 4)
	assert(M.in4(M.ip4("10.255.0.1"), net, len) and not M.in4(M.ip4("11.0.0.1"), net, len))
	assert(M.in4(0xffffffff, 0, 0) and M.cidr("1.2.3.4/33") == nil)
	local n6, l6 = M.cidr("2001:db8:ffff::/33")
	assert(M.format6(n6) == "2001:db8:8000::" and l6 == 33)
	assert(M.in6(M.ip6("2001:db8:8000::5"), n6, 33) and not M.in6(M.ip6("2001:db8::5"), n6, 33))
	assert(M.eq6(M.ip6("::1"), M.ip6("0::0:1")))
	local ps = assert(M.ports("22, 80,8000-8999"))
	assert(ps:has(22) and ps:has(80) and ps:has(8500) and not ps:has(81) and not ps:has(9000) and not ps:has(-1))
	assert(M.ports("9-1") == nil and M.port_range("70000") == nil)
end

return M

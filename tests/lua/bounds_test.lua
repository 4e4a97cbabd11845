-- Bounds test: every truncation of every known packet, and seeded random
-- bytes, read through every view accessor with the packet placed right
-- against a PROT_NONE guard page. A read or write past the end (or before
-- the start) of the packet faults and kills this process: the ASan of pure
-- Lua. Also checks that what comes back is nil or lies inside the buffer.
--   luajit tests/lua/bounds_test.lua        (BOUNDS_ITERS=n for more random packets)
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"
local pf = require "pcapfile"

ffi.cdef [[
void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int mprotect(void *addr, size_t len, int prot);
long sysconf(int name);
]]
local PROT_NONE, PROT_RW, MAP_PRIVATE_ANON = 0, 3, 0x22
local PAGE = tonumber(ffi.C.sysconf(30))          -- _SC_PAGESIZE
local MAXLEN = 96 * 1024

-- [guard][MAXLEN rounded to pages][guard]
local body = math.ceil(MAXLEN / PAGE) * PAGE
local base = ffi.C.mmap(nil, body + 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
assert(ffi.cast("intptr_t", base) ~= -1, "mmap")
base = ffi.cast("uint8_t *", base)
assert(ffi.C.mprotect(base, PAGE, PROT_NONE) == 0)
assert(ffi.C.mprotect(base + PAGE + body, PAGE, PROT_NONE) == 0)
local lo, hi = base + PAGE, base + PAGE + body      -- the readable window

-- `bounds_test.lua --probe`: read one byte past the window; must fault.
if arg and arg[1] == "--probe" then
	io.stdout:write(hi[0]); os.exit(0)
end

local desc = ffi.new("struct ld_packet")
local pkt = packet.new()

-- Methods that need arguments; everything else is called with none (a read).
local NEEDS_ARGS = { attach = true, ext_at = true, flag = true, sack_block = true, _write32 = true }

local METHODS = { [6] = require("divert.tcp").methods, [17] = require("divert.udp").methods,
	[1] = require("divert.icmp").methods, [58] = require("divert.icmp").methods,
	v4 = require("divert.ipv4").methods, v6 = require("divert.ipv6").methods }

local data, n             -- the packet under test
local function inside(p, len, what)
	local a = ffi.cast("uint8_t *", p)
	if a < data or a + len > data + n then
		error(string.format("%s out of range: [%d, %d) of %d", what, tonumber(a - data), tonumber(a - data) + len, n), 2)
	end
end

local function read_all(v, what)
	inside(v.p, v.len, what)
	assert(v.hlen <= v.len, what .. ": hlen > len")
	local mt = METHODS[v.proto] or (v.ipver == 4 and METHODS.v4 or METHODS.v6)
	for name, fn in pairs(mt) do
		if not NEEDS_ARGS[name] then
			local r1, r2 = fn(v)
			if type(r1) == "cdata" and type(r2) == "number" then
				inside(r1, r2, what .. ":" .. name)         -- (ptr, len) results
			elseif (name == "src" or name == "dst") and v.ipver == 6 then
				inside(r1, 16, what .. ":" .. name)
			end
		end
	end
	if v.proto == 0 and v.ipver == 6 then
		for i = 1, v:ext_count() + 1 do
			local t, off, len = v:ext_at(i)
			if t then assert(off + len <= v.len, "ext out of range") end
		end
	end
	if v.proto == 6 then
		for k = 0, 10 do
			local o, l = v:option(k)
			if o then assert(o + l <= v.hlen, "tcp option out of range") end
		end
		for i = 0, v:sack_count() + 1 do v:sack_block(i) end
		for _, f in ipairs { "syn", "ack", "cwr" } do v:flag(f) end
	end
	if v.proto == 1 or v.proto == 58 then
		local inner = v:inner()
		if inner then read_all(inner, what .. ".inner") end
	end
end

local function write_some()
	local ip = pkt:ip()
	if not ip then return end
	ip:ttl(ip:ttl() == 0 and 1 or 0)
	local t = pkt:tcp()
	if t then
		t:dst_port(4242); t:flag("ece", true)
		if t:mss() then t:mss(536) end
		if t:wscale() then t:wscale(1) end
		if t:timestamps() then t:timestamps(1, 2) end
		for i = 1, t:sack_count() do t:sack_block(i, 5, 6) end
	end
	local u = pkt:udp()
	if u then u:src_port(9) end
	local ic = pkt:icmp() or pkt:icmpv6()
	if ic then ic:code(ic:code()); if ic:id() then ic:id(1) end end
	pkt:fix_checksums()
	pkt:fix_lengths()
end

-- Run every accessor over bytes s[1..len] placed at `at` ("end" or "start").
local TRACE = os.getenv("BOUNDS_TRACE")
local function exercise(s, len, at)
	if TRACE then io.stderr:write(at, " ", len, " ", pf.hex(s:sub(1, len)), "\n") end
	n = len
	data = at == "end" and hi - n or lo
	ffi.copy(data, s, n)
	desc.data = data; desc.len = n; desc.cap = n; desc.orig_len = n; desc.flags = 0; desc.set = 0
	pkt:attach(desc)
	for _, name in ipairs { "ip", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6" } do
		local v, why = pkt[name](pkt)
		if v then read_all(v, name) else assert(type(why) == "string", name .. " gave nil without a reason") end
	end
	local p, l = pkt:payload()
	if p then inside(p, l, "payload") end
	pkt:checksums_ok(); pkt:l4proto()
	write_some()
	-- and once more as a CSUMNOTREADY packet (first write completes the sum)
	ffi.copy(data, s, n)
	pkt:attach(desc); desc.flags = 2
	write_some()
	desc.flags = 0
end

-- Every truncation (long packets: the first 512 and last 64 lengths, and a
-- stride between), at both ends of the window.
local function truncations(s)
	local len = #s
	if len > MAXLEN then s = s:sub(1, MAXLEN); len = MAXLEN end
	local l = 0
	while l <= len do
		exercise(s, l, "end"); exercise(s, l, "start")
		if l < 512 or l >= len - 64 then l = l + 1 else l = l + 61 end
	end
end

local function known_packets()
	local list = {}
	local fh = io.open("tests/lua/views_test.lua")
	local src = fh:read("*a"); fh:close()
	-- the hex packets of the known-answer test
	for block in src:gmatch("T%.unhex%((.-)%)") do
		local h = block:gsub('[^%x]', "")
		if #h > 40 then list[#list + 1] = T.unhex(h) end
	end
	return list
end

T.check("the guard page faults on a read past the end", function ()
	local rc = os.execute("luajit tests/lua/bounds_test.lua --probe >/dev/null 2>&1")
	assert(rc ~= 0, "a read past the end went unnoticed")
end)

T.check("every truncation of the known-answer packets", function ()
	local pkts = known_packets()
	assert(#pkts >= 6, "found the hex packets")
	for _, s in ipairs(pkts) do truncations(s) end
end)

T.check("every truncation of every packet in ../shared/pcaps", function ()
	local files = pf.list()
	if #files == 0 then print("     (no captures in " .. pf.DIR .. ": skipped)") return end
	local count = 0
	for _, name in ipairs(files) do
		for r in pf.records(pf.DIR .. "/" .. name) do
			truncations(r.ip); count = count + 1
		end
	end
	print("     " .. count .. " packets from " .. #files .. " captures")
end)

T.check("seeded random bytes", function ()
	local iters = tonumber(os.getenv("BOUNDS_ITERS")) or 100000
	local seed = 20261126
	local function rnd(m)
		seed = (seed * 1103515245 + 12345) % 2147483648
		return math.floor(seed / 65536) % m
	end
	local buf = ffi.new("uint8_t[256]")
	local PROTOS = { 6, 17, 1, 58, 0, 43, 44, 60, 51, 59, 135 }
	for _ = 1, iters do
		local len = rnd(200)
		for i = 0, len - 1 do buf[i] = rnd(256) end
		local kind = rnd(4)
		if kind == 0 and len > 0 then
			buf[0] = 0x40 + 5 + rnd(3); buf[2] = 0; buf[3] = rnd(2) == 0 and len or rnd(256)
			buf[6] = rnd(4) == 0 and buf[6] or 0; buf[9] = PROTOS[1 + rnd(#PROTOS)]
		elseif kind == 1 and len > 0 then
			buf[0] = 0x60; buf[4] = 0; buf[5] = rnd(2) == 0 and math.max(len - 40, 0) or rnd(256)
			buf[6] = PROTOS[1 + rnd(#PROTOS)]
			local off = 40
			while off + 2 < len and rnd(3) > 0 do
				buf[off] = PROTOS[1 + rnd(#PROTOS)]; buf[off + 1] = rnd(3)
				off = off + (buf[off + 1] + 1) * 8
			end
		end
		exercise(ffi.string(buf, len), len, rnd(2) == 0 and "end" or "start")
	end
	print("     " .. iters .. " random packets")
end)

T.done()

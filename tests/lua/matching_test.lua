-- Addresses, prefix sets, flow ids and payload search on real traffic
-- (../shared/pcaps) and against brute force.
--   luajit tests/lua/matching_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"
local addr = require "divert.addr"
local prefixset = require "divert.prefixset"
local flow = require "divert.flow"
local payload = require "divert.payload"
local pf = require "pcapfile"

local function each_packet(fn)
	for _, name in ipairs(pf.list()) do
		for r in pf.records(pf.DIR .. "/" .. name) do fn(packet.from_string(r.ip), name, r) end
	end
end

T.check("module selftests", function ()
	addr.selftest(); prefixset.selftest(); flow.selftest(); payload.selftest()
end)

T.check("addresses of every capture format and parse back to the same bytes", function ()
	local n = 0
	each_packet(function (pkt)
		local ip = pkt:ip()
		if not ip then return end
		if ip.ipver == 4 then
			T.eq(addr.ip4(ip:src_str()), ip:src()); T.eq(addr.ip4(ip:dst_str()), ip:dst())
		else
			assert(addr.eq6(addr.ip6(ip:src_str()), ip:src()), ip:src_str())
			assert(addr.eq6(addr.ip6(ip:dst_str()), ip:dst()), ip:dst_str())
		end
		n = n + 1
	end)
	if n == 0 then print("     (no captures: skipped)") end
end)

T.check("prefix set: longest match equals brute force over IPv6 prefixes", function ()
	local seed = 3
	local function rnd(m) seed = (seed * 1103515245 + 12345) % 2147483648; return math.floor(seed / 65536) % m end
	local set, list = prefixset.new(), {}
	for i = 1, 1500 do
		local a = ffi.new("uint8_t[16]")
		a[0] = 0x20; a[1] = 0x01; for k = 2, 7 do a[k] = rnd(4) end
		local len = 16 + rnd(49)
		local text = addr.format6(a) .. "/" .. len
		local net, l = addr.cidr(text)
		list[#list + 1] = { net, l, i }
		set:add(text, i)
	end
	for _ = 1, 1500 do
		local q = ffi.new("uint8_t[16]")
		q[0] = 0x20; q[1] = 0x01; for k = 2, 15 do q[k] = rnd(4) end
		local best, bl = nil, -1
		for _, e in ipairs(list) do
			if e[2] > bl and addr.in6(q, e[1], e[2]) then best, bl = e, e[2] end
		end
		local got = set:match6(q)
		if best == nil then T.eq(got, nil) else
			-- the same prefix may have been added twice: compare prefixes
			local g = list[got]
			assert(g[2] == best[2] and addr.in6(g[1], best[1], best[2]), "longest match")
		end
	end
end)

T.check("flow ids: one id per 5-tuple on real traffic, both directions together", function ()
	local flows = flow.table { size = 4096, bidirectional = true }
	local by_key = {}
	local n = 0
	each_packet(function (pkt)
		local id = flows:lookup(pkt)
		if not id then return end
		local key = flows:describe(id)
		-- the same id always describes the same (canonical) tuple
		if by_key[id] then T.eq(by_key[id], key, "id " .. id) else by_key[id] = key end
		n = n + 1
	end)
	if n == 0 then print("     (no captures: skipped)") return end
	-- ssh.pcap is one TCP connection in both directions
	local ids = {}
	for r in pf.records(pf.DIR .. "/ssh.pcap") do
		local id = flows:get(packet.from_string(r.ip))
		if id then ids[id] = true end
	end
	local count = 0
	for _ in pairs(ids) do count = count + 1 end
	T.eq(count, 1, "ssh.pcap flows")
end)

T.check("payload search finds what string.find finds, on every capture", function ()
	local needles = { "HTTP", "\0\0\0", "ssh", "SSH-2.0", "xml", "\1\0\1", "a" }
	each_packet(function (pkt, name, r)
		local p, n = pkt:payload()
		if not p then return end
		local s = ffi.string(p, n)
		for _, nd in ipairs(needles) do
			local want = s:find(nd, 1, true)
			local got = payload.find(p, n, nd)
			T.eq(got and got + 1, want, name .. " #" .. r.n .. " " .. nd)
			T.eq(payload.starts_with(p, n, nd), s:sub(1, #nd) == nd)
		end
	end)
end)

T.done()

-- Checksums against an independent reference: the textbook algorithm written
-- out here byte by byte (RFC 1071, RFC 768/793 pseudo-headers, RFC 8200 for
-- IPv6), on random input, on every packet of ../shared/pcaps, and after
-- random edits made through the views (incremental updates, RFC 1624).
--   luajit tests/lua/checksum_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local band, rshift = bit.band, bit.rshift
local packet = require "divert.packet"
local checksum = require "divert.checksum"
local pf = require "pcapfile"

-- The reference: sum of big-endian 16-bit words over a list of byte strings.
local function ref_sum(parts)
	local s = 0
	for _, str in ipairs(parts) do
		local n = #str
		for i = 1, n - 1, 2 do s = s + str:byte(i) * 256 + str:byte(i + 1) end
		if n % 2 == 1 then s = s + str:byte(n) * 256 end
	end
	while s > 65535 do s = s % 65536 + math.floor(s / 65536) end
	return s
end
local function be16(v) return string.char(math.floor(v / 256) % 256, v % 256) end
local function be32(v) return be16(math.floor(v / 65536) % 65536) .. be16(v % 65536) end

-- Reference transport checksum of a packet (string), or nil when it has
-- none we check: plain IPv4/IPv6 without extension headers other than
-- hop-by-hop / destination options / routing (final destination).
local function ref_l4(s)
	local ver = math.floor(s:byte(1) / 16)
	local src, dst, proto, l4
	if ver == 4 then
		local hl = s:byte(1) % 16 * 4
		local tot = s:byte(3) * 256 + s:byte(4)
		if tot == 0 or tot > #s or (s:byte(7) * 256 + s:byte(8)) % 16384 ~= 0 then return nil end
		src, dst, proto, l4 = s:sub(13, 16), s:sub(17, 20), s:byte(10), s:sub(hl + 1, tot)
		if proto == 1 then return { l4 }, 2, l4 end
	elseif ver == 6 then
		local plen = s:byte(5) * 256 + s:byte(6)
		if plen == 0 or 40 + plen > #s then return nil end
		src, dst = s:sub(9, 24), s:sub(25, 40)
		local nh, off = s:byte(7), 41
		while nh == 0 or nh == 60 or nh == 43 do
			local hl = (s:byte(off + 1) + 1) * 8
			if nh == 43 and s:byte(off + 3) > 0 then   -- segments left: final destination
				local rt = s:byte(off + 2)
				if rt == 0 or rt == 2 then
					local last = off + 8 + (math.floor(s:byte(off + 1) / 2) - 1) * 16
					dst = s:sub(last, last + 15)
				elseif rt == 4 then
					dst = s:sub(off + 8, off + 23)
				end
			end
			nh = s:byte(off); off = off + hl
		end
		proto, l4 = nh, s:sub(off, 40 + plen)
	else
		return nil
	end
	local off = ({ [6] = 16, [17] = 6, [58] = 2 })[proto]
	if not off or #l4 < off + 2 then return nil end
	return { src, dst, be32(#l4), "\0\0\0" .. string.char(proto), l4 }, off + 1, l4
end

-- Does the reference say the stored checksum is right?
local function ref_ok(s)
	local parts, at, l4 = ref_l4(s)
	if not parts then return nil end
	if l4:byte(at) == 0 and l4:byte(at + 1) == 0 and #parts == 5 and #parts[1] == 4
		and s:byte(10) == 17 then return true end       -- UDP/IPv4 without checksum
	return ref_sum(parts) == 65535
end

T.check("partial() equals the reference on random buffers, every length and alignment", function ()
	local seed = 99
	local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return math.floor(seed / 65536) % 256 end
	local buf = ffi.new("uint8_t[2100]")
	for i = 0, 2099 do buf[i] = rnd() end
	for _, len in ipairs { 0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1499, 1500, 2048 } do
		for off = 0, 7 do
			local got = checksum.partial(buf + off, len)
			local want = ref_sum { ffi.string(buf + off, len) }
			T.eq(got, want, "len " .. len .. " off " .. off)
		end
	end
end)

T.check("GSO-sized buffers (100 KiB) equal the reference", function ()
	local n = 100 * 1024 + 3
	local buf = ffi.new("uint8_t[?]", n)
	for i = 0, n - 1 do buf[i] = (i * 131 + 7) % 256 end
	T.eq(checksum.partial(buf, n), ref_sum { ffi.string(buf, n) })
	ffi.fill(buf, n, 0xff)
	T.eq(checksum.partial(buf, n), ref_sum { ffi.string(buf, n) })
end)

T.check("every capture: the library and the reference agree on each checksum", function ()
	local files = pf.list()
	if #files == 0 then print("     (no captures in " .. pf.DIR .. ": skipped)") return end
	local checked, good = 0, 0
	for _, name in ipairs(files) do
		for r in pf.records(pf.DIR .. "/" .. name) do
			local want = ref_ok(r.ip)
			if want ~= nil and #r.ip == r.orig then
				local pkt = packet.from_string(r.ip)
				local l4 = pkt:tcp() or pkt:udp() or pkt:icmp() or pkt:icmpv6()
				if l4 and l4.whole == 1 then
					T.eq(l4:checksum_ok(), want, name .. " #" .. r.n)
					checked = checked + 1
					if want then good = good + 1 end
				end
			end
		end
	end
	print(string.format("     %d packets compared (%d with a valid checksum as captured)", checked, good))
	assert(checked > 100)
end)

T.check("fix_checksums() makes every capture's checksums valid by the reference", function ()
	local n = 0
	for _, name in ipairs(pf.list()) do
		for r in pf.records(pf.DIR .. "/" .. name) do
			if ref_l4(r.ip) and #r.ip == r.orig then
				local pkt = packet.from_string(r.ip)
				if pkt:fix_checksums() then
					local s = ffi.string(pkt:data(), pkt:len())
					T.eq(ref_ok(s), true, name .. " #" .. r.n)
					if pkt:ipv4() then T.eq(ref_sum { s:sub(1, pkt:ipv4():hdr_len()) }, 65535, "ip header") end
					n = n + 1
				end
			end
		end
	end
	if n == 0 then print("     (no captures: skipped)") end
end)

T.check("random edits through the views keep checksums valid (incremental = full)", function ()
	local HEX = {
		"4500003c29a940004006db5f839bd7458974515eb64000502f842acb00000000a0026a4050c40000020405500402080a436a03620000000001030307",
		"4500005459cd0000401194aec0a8010bd157f912abbe00350040782459340120" ..
		"0001000000000001037777770774637064756d70036f72670000010001000029100000000000000c000a000842f5d00996f90b13",
		"6000000000302b05220000000000024402123ffffeae22f722000000000002110002000000000002110400020000000022000000000002100002000000000004" ..
		"22000000000002400002000000000004160d160a00082786",
		"6000000000240001fe80000000000000021517fffecce546ff0200000000000000000000000000163a000502000001008f001fc50000000104000000ff0200000000000000000db811223344",
	}
	local seed = 7
	local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return math.floor(seed / 65536) % n end
	for round = 1, 2000 do
		local pkt = packet.from_string(T.unhex(HEX[1 + rnd(#HEX)]))
		local ip = pkt:ip()
		for _ = 1, 1 + rnd(4) do
			local what = rnd(8)
			if what == 0 then ip:ttl(rnd(256))
			elseif what == 1 and ip.ipver == 4 then ip:src(rnd(65536) * 65536 + rnd(65536))
			elseif what == 1 then local a = ffi.new("uint8_t[16]"); for i = 0, 15 do a[i] = rnd(256) end; ip:src(a)
			elseif what == 2 and ip.ipver == 4 then ip:dst(rnd(65536) * 65536 + rnd(65536)); ip:id(rnd(65536))
			elseif what == 3 and pkt:tcp() then local t = pkt:tcp(); t:seq(rnd(65536) * 65536 + rnd(65536)); t:window(rnd(65536))
			elseif what == 4 and pkt:tcp() then local t = pkt:tcp(); if t:mss() then t:mss(rnd(65536)) end; if t:timestamps() then t:timestamps(rnd(65536) * 65536, rnd(65536)) end
			elseif what == 5 and pkt:udp() then pkt:udp():dst_port(rnd(65536)); pkt:udp():src_port(rnd(65536))
			elseif what == 6 and pkt:icmpv6() then pkt:icmpv6():code(rnd(256))
			elseif what == 7 and pkt:tcp() then pkt:tcp():flag("psh", rnd(2) == 1); pkt:tcp():wscale(rnd(15))
			end
		end
		local s = ffi.string(pkt:data(), pkt:len())
		T.eq(ref_ok(s), true, "round " .. round)
		if ip.ipver == 4 then T.eq(ref_sum { s:sub(1, 20) }, 65535, "ip header, round " .. round) end
	end
end)

-- The vectors core/csum.c is tested with too (tests/unit/core_unit.c): C
-- and Lua each keep their own checksum (the core completes checksums before
-- a raw send, Lua after an edit); the shared vectors keep them agreeing.
T.check("the shared vectors (tests/vectors/l4_checksums.txt)", function ()
	local n = 0
	for line in io.lines("tests/vectors/l4_checksums.txt") do
		local name, hex = line:match("^([%w%-]+) (%x+)$")
		if name then
			local len = #hex / 2
			local b = ffi.new("uint8_t[?]", len)
			for i = 0, len - 1 do b[i] = tonumber(hex:sub(2 * i + 1, 2 * i + 2), 16) end
			local ipver = rshift(b[0], 4)
			local l4off = ipver == 4 and band(b[0], 15) * 4 or 40
			local proto = ipver == 4 and b[9] or b[6]
			local off = l4off + (proto == 6 and 16 or proto == 17 and 6 or 2)
			local want = b[off] * 256 + b[off + 1]
			b[off], b[off + 1] = 0, 0
			T.eq(checksum.fill_l4(b, ipver, b + l4off, len - l4off, proto), true, name)
			T.eq(b[off] * 256 + b[off + 1], want, name)
			n = n + 1
		end
	end
	T.eq(n >= 10, true, "vectors read")
end)

T.done()

-- bench/lua_lib_bench.lua: the Lua half of build/bench/lua_lib_bench.
-- Called with (hex_udp4, hex_udp6_ext2, iterations, checksum_iterations,
-- repeat); each case runs `repeat` times and the fastest run counts;
-- returns { case = ns per packet } for the cases the C half prints.
-- Each iteration is one packet as a policy sees it: pkt:attach(desc), then
-- the views. The bytes change a little per packet (like the C loops), so
-- the JIT cannot hoist the work out of the loop.
local hex4, hex6, iters, csum_iters, rep = ...
rep = rep or 5
local ffi = require "ffi"
local band = require("bit").band
local divert = require "divert"
local packet = require "divert.packet"
local checksum = require "divert.checksum"

divert.tune_jit()            -- as the engine does

ffi.cdef [[
struct ld_bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct ld_bench_timespec *ts);
]]
local ts = ffi.new("struct ld_bench_timespec")
local function now()
	ffi.C.clock_gettime(1, ts)     -- CLOCK_MONOTONIC
	return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

local function desc_of(bytes, len)
	local d = ffi.new("struct ld_packet")
	d.data = bytes; d.len = len; d.cap = len
	return d
end
local function unhex(h)
	return (h:gsub("..", function (x) return string.char(tonumber(x, 16)) end))
end
local function buffer(s)
	local b = ffi.new("uint8_t[?]", #s)
	ffi.copy(b, s, #s)
	return b
end

local s4, s6 = unhex(hex4), unhex(hex6)
local b4, b6 = buffer(s4), buffer(s6)
local d4, d6 = desc_of(b4, #s4), desc_of(b6, #s6)

-- TCP 1500 bytes: the same packet the C half builds
local TCP_LEN = 1500
local bt = ffi.new("uint8_t[?]", TCP_LEN)
local function tcp_packet()
	ffi.fill(bt, TCP_LEN)
	bt[0] = 0x45; bt[2] = math.floor(TCP_LEN / 256); bt[3] = TCP_LEN % 256; bt[8] = 64; bt[9] = 6
	bt[12] = 198; bt[13] = 18; bt[15] = 1; bt[16] = 198; bt[17] = 18; bt[19] = 2
	bt[20] = math.floor(40000 / 256); bt[21] = 40000 % 256; bt[23] = 80; bt[32] = 0x50; bt[33] = 0x10
	for i = 40, TCP_LEN - 1 do bt[i] = (i * 7) % 256 end
	checksum.fill_l4(bt, 4, bt + 20, TCP_LEN - 20, 6)
end
tcp_packet()
local dt = desc_of(bt, TCP_LEN)

local pkt = packet.new()
assert(pkt:attach(d4):udp():dst_port() == 53, "ipv4 packet")
assert(pkt:attach(d6):udp():dst_port() == 53, "ipv6 packet")
assert(pkt:attach(dt):tcp():checksum_ok() == true, "tcp packet")

local function time(n, f)
	f(math.min(n, 200000))       -- warm up: compile the traces
	local best
	for _ = 1, rep do
		local t = now()
		f(n)
		local ns = (now() - t) / n
		if not best or ns < best then best = ns end
	end
	return best
end

local R = {}

R.ipv4_udp_port = time(iters, function (n)
	local acc = 0
	for i = 1, n do
		b4[23] = band(i, 255)
		local udp = pkt:attach(d4):udp()
		if udp then acc = acc + udp:dst_port() end
	end
	b4[23] = 0x35
	return acc
end)

R.ipv6_ext2_port = time(iters, function (n)
	local acc = 0
	for i = 1, n do
		b6[59] = band(i, 255)
		local udp = pkt:attach(d6):udp()
		if udp then acc = acc + udp:dst_port() end
	end
	b6[59] = 0x35
	return acc
end)

R.tcp_csum_1500 = time(csum_iters, function (n)
	local acc = 0
	for i = 1, n do
		bt[TCP_LEN - 1] = band(i, 255)
		local tcp = pkt:attach(dt):tcp()
		if tcp and tcp:checksum_ok() then acc = acc + 1 end
	end
	return acc
end)
tcp_packet()

R.incr_update = time(iters, function (n)
	local acc = 0
	for i = 1, n do
		local tcp = pkt:attach(dt):tcp()
		if tcp then tcp:dst_port(band(i, 0xffff)) end
	end
	return acc
end)
tcp_packet()
assert(pkt:attach(dt):tcp():checksum_ok() == true)

return R

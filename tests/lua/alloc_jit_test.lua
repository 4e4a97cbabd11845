-- The hot paths allocate nothing and stay compiled. Each scenario runs in a
-- fresh luajit (its own JIT state, as a policy would), warms up, then runs
-- 1e6 packets with the GC stopped: the Lua heap must not grow, no trace may
-- abort once warm, and there must be no NYI or blacklisted trace at all.
--   luajit tests/lua/alloc_jit_test.lua            all scenarios
--   luajit tests/lua/alloc_jit_test.lua tcp         one, printing its numbers
-- ALLOC_PACKETS=n changes the packet count (default 1e6).
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"

-- Each scenario: the heap stays flat and nothing aborts once warm. "Flat"
-- means under 64 KiB over the whole run: one-off JIT bookkeeping is a few
-- KiB, while a single 24-byte box per packet would be 24 MB.
-- Without divert.tune_jit() the "mixed" policy allocates on every packet
-- (its paths do not fit the default trace limits and fall back to the
-- interpreter): the engine must call it.
local SCENARIOS = {
	{ "tcp", "IPv4 + TCP: parse options, clamp MSS, recompute the full checksum" },
	{ "udp", "IPv4 + UDP: read the destination port (the engine's benchmark policy)" },
	{ "ipv6", "IPv6 extension headers + UDP/ICMPv6, checksums verified" },
	{ "checksum", "full checksum of 1500-byte packets" },
	{ "mixed", "a policy: prefix set, flow table, TCP/UDP/ICMPv6 reads and writes, mixed traffic" },
	{ "shape", "shaping packet objects of mixed traffic: per-flow pipe, then a named pipe corrupting (checksums kept)" },
}

local scenario = arg and arg[1]
if not scenario then
	for _, s in ipairs(SCENARIOS) do
		T.check(s[1] .. ": " .. s[2], function ()
			local f = assert(io.popen("luajit tests/lua/alloc_jit_test.lua " .. s[1] .. " 2>&1"))
			local out = f:read("*a")
			f:close()
			io.write(out)
			local grew = tonumber(out:match("heap grew (%-?%d+) bytes"))
			assert(grew, "no result from the scenario")
			assert(not out:find("NYI", 1, true) and not out:find("blacklist", 1, true), "NYI or blacklisted trace")
			assert(grew < 65536, "the hot path allocates: " .. grew .. " bytes")
			assert(not out:find("ABORT", 1, true), "trace aborts")
			local retries = tonumber(out:match("(%d+) loop retries")) or 0
			assert(retries <= 3, retries .. " loop retries after warm-up: a loop keeps losing its trace")
			assert(tonumber(out:match("(%d+) traces")) > 0, "nothing compiled")
		end)
	end
	T.done()
end

---------------------------------------------------------------- one scenario
local ffi = require "ffi"
local jit = require "jit"
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"
local packet = require "divert.packet"
local checksum = require "divert.checksum"
local prefixset = require "divert.prefixset"
local flow = require "divert.flow"
local payload = require "divert.payload"
local addr = require "divert.addr"

local N = tonumber(os.getenv("ALLOC_PACKETS")) or 1e6

-- As the engine does (lua/divert/host.lua): room for a whole handler per trace.
require("divert").tune_jit()

-- While loops warm up LuaJIT aborts traces as a matter of course ("inner
-- loop in root trace", "leaving loop in root trace", "loop unroll limit"):
-- that is how it finds where loops start. What must never happen is an NYI
-- or a blacklisted trace, and once warm nothing else may abort. A stray
-- loop-finding abort after warm-up (LuaJIT retrying a loop start, a few
-- times in 1e6 packets, with the heap still flat) is reported as LOOP, not
-- counted as a failure.
local stops, warm, bad, loops = 0, false, 0, 0
local function on_trace(what, _, func, pc, otr, oex)
	if what == "stop" then stops = stops + 1 end
	if what ~= "abort" then return end
	local msg = vmdef.traceerr[otr] or tostring(otr)
	if type(oex) == "number" and msg:find("%%d") then msg = msg:format(oex)
	elseif msg:find("%%s") then
		msg = msg:format(type(oex) == "number" and (vmdef.ffnames[oex] or tostring(oex)) or tostring(oex))
	end
	if warm or msg:find("NYI") or msg:find("blacklist") then
		local info = jutil.funcinfo(func, pc)
		local loop = warm and (msg:find("loop in root trace") or msg:find("loop unroll limit"))
		print(string.format("%s %s:%s: %s%s", loop and "LOOP" or "ABORT", info.source or "?",
			tostring(info.currentline), msg, warm and " (after warm-up)" or ""))
		if loop then loops = loops + 1 else bad = bad + 1 end
	end
end

-- Real packets (see views_test.lua for where they come from).
local HEX = {
	syn = "4500003c29a940004006db5f839bd7458974515eb64000502f842acb00000000" ..
	      "a0026a4050c40000020405500402080a436a03620000000001030307",
	dns = "4500005459cd0000401194aec0a8010bd157f912abbe00350040782459340120" ..
	      "0001000000000001037777770774637064756d70036f72670000010001000029100000000000000c000a000842f5d00996f90b13",
	mld = "6000000000240001fe80000000000000021517fffecce546ff0200000000000000000000000000163a000502000001008f" ..
	      "001fc50000000104000000ff0200000000000000000db811223344",
	rt0 = "6000000000302b05220000000000024402123ffffeae22f722000000000002110002000000000002110400020000000022" ..
	      "000000000002100002000000000004" .. "22000000000002400002000000000004160d160a00082786",
}
-- A TCP data segment with NOP NOP TS, 1448 bytes of data (as Linux sends bulk data).
local function bulk()
	local s = T.unhex("450005dc1c4640004006000ac0a8010bd157f912b640005000000001000000018018020000000000" ..
		"0101080a436a036200000000")
	s = s .. string.rep("x", 1500 - #s)
	local pkt = packet.from_string(s)
	pkt:fix_checksums()
	return ffi.string(pkt:data(), pkt:len())
end

local function descriptors(list)
	local descs = ffi.new("struct ld_packet[?]", #list)
	local keep = {}
	for i, s in ipairs(list) do
		local b = ffi.new("uint8_t[?]", #s + 64)
		ffi.copy(b, s, #s)
		keep[i] = b
		local d = descs[i - 1]
		d.data = b; d.len = #s; d.cap = #s + 64
	end
	return descs, #list, keep
end

local handlers = {}

function handlers.tcp()
	local descs, n, keep = descriptors { T.unhex(HEX.syn), bulk() }
	return function (pkt)
		local tcp = pkt:tcp()
		if not tcp then return 0 end
		local score = 0
		local mss = tcp:mss()
		if mss then tcp:mss(mss == 1360 and 1200 or 1360) end
		local tsval = tcp:timestamps()
		if tsval then score = score + tsval % 7 end
		if tcp:checksum_ok() then score = score + 1 end
		return score
	end, descs, n, keep
end

function handlers.udp()
	local descs, n, keep = descriptors { T.unhex(HEX.dns) }
	return function (pkt)
		local udp = pkt:udp()
		if udp and udp:dst_port() == 53 then return 0 end
		return 1
	end, descs, n, keep
end

function handlers.ipv6()
	local descs, n, keep = descriptors { T.unhex(HEX.mld), T.unhex(HEX.rt0) }
	return function (pkt)
		local ip = pkt:ipv6()
		if not ip then return 0 end
		local score = ip:ext_count()
		local udp = pkt:udp()
		if udp then
			udp:src_port(udp:src_port() == 5645 and 5646 or 5645)
			if udp:checksum_ok() then score = score + 1 end
			return score
		end
		local ic = pkt:icmpv6()
		if ic then
			ic:code(ic:code() == 0 and 1 or 0)
			if ic:checksum_ok() then score = score + 1 end
		end
		return score
	end, descs, n, keep
end

function handlers.checksum()
	local descs, n, keep = descriptors { bulk() }
	return function (pkt)
		return checksum.finish(checksum.partial(pkt:data(), pkt:len()))
	end, descs, n, keep
end

function handlers.mixed()
	local descs, n, keep = descriptors { T.unhex(HEX.syn), T.unhex(HEX.dns), T.unhex(HEX.mld), T.unhex(HEX.rt0), bulk() }
	local deny = prefixset.new { "10.0.0.0/8", "2001:db8::/32", "137.116.0.0/16" }
	local flows = flow.table { size = 1024, bidirectional = true }
	local web = addr.ports("53,80,443")
	return function (pkt)
		local score = 0
		local ip = pkt:ip()
		if not ip then return 0 end
		if deny:match_src(ip) then score = score + 1 end
		local id = flows:lookup(pkt)
		if id then score = score + id end
		local tcp = pkt:tcp()
		if tcp then
			local mss = tcp:mss()
			if mss then tcp:mss(mss == 1360 and 1200 or 1360) end
			if tcp:syn() and web:has(tcp:dst_port()) then score = score + 2 end
			if tcp:checksum_ok() then score = score + 1 end
			ip:ttl(ip:ttl() == 64 and 63 or 64)
			return score
		end
		local udp = pkt:udp()
		if udp then
			if udp:dst_port() == 53 then score = score + 3 end
			local p, len = pkt:payload()
			if payload.find(p, len, "tcpdump") then score = score + 1 end
			-- a pointer held across a loop (the checksum below) is boxed
			p = nil  -- luacheck: ignore 311
			udp:src_port(udp:src_port() == 5645 and 5646 or 5645)
			if udp:checksum_ok() then score = score + 1 end
			return score
		end
		local ic = pkt:icmpv6()
		if ic then
			ic:code(ic:code() == 0 and 1 or 0)
			if pkt:checksums_ok() then score = score + 1 end
		end
		return score
	end, descs, n, keep
end

-- divert.shape as a policy uses it: packet objects (whose parsed views the
-- pipes reuse) of mixed IPv4/IPv6 traffic, a per-flow pipe (divert.flow
-- keys it) chained with a named pipe (metrics) that corrupts payloads
-- through the views and keeps their checksums right. No random yes/no
-- decisions here: each grows side traces for a long while, and compiling
-- them allocates (tests/lua/shape_test.lua checks random pipes with a
-- window of 200k packets in which no trace is recorded).
function handlers.shape()
	local shape = require "divert.shape"
	local descs, n, keep = descriptors { T.unhex(HEX.syn), T.unhex(HEX.dns), T.unhex(HEX.mld), T.unhex(HEX.rt0), bulk() }
	local per_flow = shape.pipe { per_flow = true, rate = "1gbit", limit = 1000, delay = 5, seed = 1 }
	local impair = shape.pipe { name = "alloc", corrupt = 1, keep_checksums = true, delay = 1, seed = 2 }
	local both = shape.chain(per_flow, impair)
	local now = 1e12
	return function (pkt)
		now = now + 20000                 -- 20 us apart: the link keeps up
		local d = pkt.d
		d.tstamp_ns = now; d.set = 0; d.hold_ns = 0; d.dup = 0
		return both(pkt)
	end, descs, n, keep
end

local make = handlers[scenario]
if not make then io.stderr:write("unknown scenario ", scenario, "\n"); os.exit(2) end
local handler, descs, np, keep = make()

-- The engine's dispatch loop, in small: one packet object, attached per packet.
local pkt = packet.new()
local function run(n)
	local s = 0
	for i = 0, n - 1 do
		s = s + handler(pkt:attach(descs + (i % np)))
	end
	return s
end

jit.attach(on_trace, "trace")
run(100000)
warm = true
collectgarbage("collect"); collectgarbage("stop")
local before = collectgarbage("count")
local s = run(N)
local grew = math.floor((collectgarbage("count") - before) * 1024)
collectgarbage("restart")
jit.attach(on_trace)
print(string.format("     heap grew %d bytes over %d packets, %d traces, %d bad aborts, %d loop retries (score %d)",
	grew, N, stops, bad, loops, s))
assert(keep)
os.exit(0)

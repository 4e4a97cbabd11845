-- divert: verdicts, and the library's modules loaded on first use.
--
--   local divert = require "divert"
--   return function (pkt)
--     local udp = pkt:udp()
--     if udp and udp:dst_port() == 53 then return divert.DROP end
--     return divert.PASS
--   end
--
-- Verdicts are the kernel's NF_* numbers so the core passes them through
-- unchanged (core/ld_abi.h, enum ld_verdict). `require "divert"` stays cheap:
-- it loads no FFI code until a submodule is touched (divert.tcp, ...).
local bit = require "bit"
local band, bor, lshift = bit.band, bit.bor, bit.lshift

local M = {
	DROP   = 0,  -- NF_DROP
	PASS   = 1,  -- NF_ACCEPT
	REPEAT = 4,  -- NF_REPEAT: the packet traverses the hook again
	-- pass, and the rest of the connection (both directions, by conntrack)
	-- skips the queue until the next reload (docs/rules.md#offload); in
	-- replay and with --no-offload a plain PASS
	OFFLOAD = 6,
}

-- Netfilter hooks, as pkt:hook() returns them (enum nf_inet_hooks):
--   if pkt:hook() == divert.OUTPUT then ... end
M.PREROUTING, M.INPUT, M.FORWARD, M.OUTPUT, M.POSTROUTING = 0, 1, 2, 3, 4
--- divert.HOOK_NAMES[n] -> "prerouting" ... "postrouting" (the names
-- `luadivert run --hook` takes)
M.HOOK_NAMES = { [0] = "prerouting", "input", "forward", "output", "postrouting" }

local QUEUE = 3  -- NF_QUEUE; the target queue goes in bits 16..31
local BYPASS = 0x8000  -- NF_VERDICT_FLAG_QUEUE_BYPASS

--- divert.queue(n [, opts]) -> verdict that sends the packet to queue n
-- (0..65535). Without a program bound to queue n the kernel DROPS the
-- packet; with opts.bypass = true it accepts it instead (the packet goes
-- on as if passed), like iptables' --queue-bypass.
-- Queueing a packet to the queue it came from sends it straight back: the
-- core gives a packet the default verdict after 32 such passes (or REPEATs)
-- and counts an error.
-- Like every bit op it returns a signed 32-bit number (queue >= 32768 gives
-- a negative number); the core stores it as uint32_t, which is the same bits.
function M.queue(n, opts)
	if type(n) ~= "number" or n < 0 or n > 65535 or n % 1 ~= 0 then
		error("divert.queue: queue number must be an integer 0..65535, got " .. tostring(n), 2)
	end
	if opts ~= nil then
		if type(opts) ~= "table" then
			error("divert.queue: options must be a table ({ bypass = true }), got " .. type(opts), 2)
		end
		for k in pairs(opts) do
			if k ~= "bypass" then error("divert.queue: unknown option " .. tostring(k), 2) end
		end
		if opts.bypass then return bor(QUEUE, BYPASS, lshift(n, 16)) end
	end
	return bor(QUEUE, lshift(n, 16))
end

--- divert.is_verdict(v) -> true when v is a number the core accepts as a verdict.
function M.is_verdict(v)
	if type(v) ~= "number" then return false end
	if v == 0 or v == 1 or v == 4 or v == 6 then return true end
	-- queue verdicts: low 16 bits are NF_QUEUE, the rest a queue number;
	-- accept both the signed (bit op) and the unsigned spelling
	if v % 1 ~= 0 or v < -2147483648 or v > 4294967295 then return false end
	local low = band(v, 0xffff)
	return low == QUEUE or low == QUEUE + BYPASS
end

--- divert.tune_jit(): set LuaJIT up for per-packet handlers.
-- - Room for a whole handler per trace: with the default limits (maxirconst
--   500, maxsnap 500, maxrecord 4000) a handler that parses IPv4/IPv6, TCP
--   options, looks up a flow and checks a checksum overflows them; the trace
--   aborts ("trace too long"), the code falls back to the interpreter, and
--   every pointer it makes is allocated.
-- - hotexit=2: compile a side trace at the second exit taken, not the
--   tenth, so mixed traffic (TCP and UDP, short and long segments) gets all
--   its paths compiled during warm-up instead of wandering through the
--   interpreter. (1 would also compile paths taken once, long after
--   warm-up; a new trace is a GC object, so the heap would not stay flat.)
-- - loopunroll=60: short checksum loops unroll into the trace that calls
--   them instead of aborting it.
-- tests/lua/alloc_jit_test.lua measures the effect. The engine calls this
-- once at start; standalone programs may too. Returns false without the JIT.
function M.tune_jit()
	local ok, jit = pcall(require, "jit")
	if not ok or not jit.opt then return false end
	jit.opt.start("maxtrace=8000", "maxrecord=16000", "maxirconst=2000", "maxsnap=2000",
	              "maxside=1000", "sizemcode=256", "maxmcode=16384", "hotexit=2", "loopunroll=60")
	return true
end

--- divert.inject(bytes_or_pkt, {direction = "out"|"in", ifindex = n}) -> true | nil, err
-- Send a new packet (a string of IP bytes, or a packet object): live through
-- the raw socket with the skip mark, in replay into the output at the
-- current virtual time. See lua/divert/inject.lua.
function M.inject(p, opts)
	return require("divert.inject").send(p, opts)
end

-- Submodules load on first use: divert.ipv4, divert.checksum, ...
local lazy = {
	abi = true, packet = true, ipv4 = true, ipv6 = true, tcp = true, udp = true,
	icmp = true, checksum = true, addr = true, prefixset = true, flow = true,
	payload = true, view = true, shape = true, host = true, metrics = true,
}
setmetatable(M, { __index = function (t, k)
	if lazy[k] then
		local mod = require("divert." .. k)
		rawset(t, k, mod)
		return mod
	end
end })

function M.selftest()
	assert(M.PASS == 1 and M.DROP == 0 and M.REPEAT == 4 and M.OFFLOAD == 6)
	assert(M.is_verdict(M.OFFLOAD) and not M.is_verdict(7))
	assert(M.queue(0) == 3 and M.queue(1) == 65539 and M.queue(65535) == bor(3, lshift(65535, 16)))
	assert(M.is_verdict(M.queue(65535)) and M.is_verdict(0xffff0003))
	assert(M.OUTPUT == 3 and M.HOOK_NAMES[M.POSTROUTING] == "postrouting" and M.HOOK_NAMES[0] == "prerouting")
	assert(M.queue(2, { bypass = true }) == 0x28003 and M.is_verdict(M.queue(2, { bypass = true })))
	assert(M.queue(2, {}) == M.queue(2) and not pcall(M.queue, 2, { bypas = true }))
	assert(M.is_verdict(M.queue(7)) and M.is_verdict(M.PASS) and M.is_verdict(M.DROP))
	assert(not M.is_verdict(2) and not M.is_verdict("1") and not M.is_verdict(nil)
	       and not M.is_verdict(1.5) and not M.is_verdict(-1) and not M.is_verdict(5))
	assert(not pcall(M.queue, 65536) and not pcall(M.queue, -1) and not pcall(M.queue, 1.5))
	assert(not pcall(M.queue, "1"))
end

return M

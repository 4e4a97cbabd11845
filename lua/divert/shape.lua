--- divert.shape: traffic-shaping pipes for luadivert policies.
--
-- A pipe is built once and applied to each packet:
--
--   local shape = require "divert.shape"
--   local pipe = shape.pipe{ delay = 80, jitter = 20, distribution = "normal",
--                            loss = 0.01, rate = "1mbit", seed = 42 }
--   return function (pkt) return pipe(pkt) end
--
-- A pipe computes, for each packet, whether it is lost and when it leaves
-- (its release time), and writes that into the packet descriptor: a drop
-- verdict, or LD_SET_HOLD with hold_ns, which makes the core keep the packet
-- in the kernel queue until it is due (see core/timer_heap.h). It can also
-- ask for duplicates (descriptor field `dup`, injected by the core through a
-- raw socket, core/inject.c) and flip bits in the payload.
--
-- Inside one pipe a packet goes, in this order (as in a dummynet pipe with
-- netem's impairments):
--
--   loss / Gilbert-Elliott ─► throttle ─► limit (tail drop) ─► rate (a link
--   with a token bucket) ─► delay line (delay + jitter, FIFO unless reorder)
--   ─► duplicate, corrupt
--
-- Time: "now" is the packet's tstamp_ns (CLOCK_MONOTONIC at receive in the
-- daemon, capture time in `luadivert replay`), never the wall clock, so the
-- same packets with the same seed give the same decisions, live or offline.
-- A packet already held by an earlier pipe (or by pkt:hold) arrives at the
-- next pipe at its release time, so pipes applied one after the other, or
-- through shape.chain(p1, p2, ...), compose in the order written.
--
-- Hot path: no table, closure or string is created per packet (only when a
-- per-flow pipe meets a new flow); everything is JIT-compiled
-- (tests/lua/shape_test.lua checks both).
--
-- The pieces, one purpose a file (lua/divert/shape/): options.lua (the
-- option parsers, seeds), loss.lua, rate.lua (throttle, limit, rate),
-- delay.lua (delay, jitter, reorder), impair.lua (duplicate, corrupt),
-- flows.lua (per-flow state on divert.flow), pipe.lua (the pipe object and
-- a packet's path through it). Headers are read through the packet views
-- (divert.view, ipv4, ipv6, tcp, udp): one parser for the whole library.
--
-- See docs/shaping.md for the full reference and recipes.

local ffi = require "ffi"
local bit = require "bit"
require "divert.abi"
local options = require "divert.shape.options"
local delay = require "divert.shape.delay"
local flows = require "divert.shape.flows"
local pipe = require "divert.shape.pipe"

-- Random decisions grow many side traces. With LuaJIT's default limits a
-- busy shaping policy can fill the machine-code area (which flushes every
-- trace) or get hot functions blacklisted after repeated aborts; either way
-- the hot path falls back to the interpreter, slower and allocating for
-- 64-bit fields. divert.tune_jit() raises the limits (the engine calls it
-- too; calling it again sets the same values).
do
	local ok, divert = pcall(require, "divert")
	if not ok then ok, divert = pcall(require, "divert.init") end
	if ok then divert.tune_jit() end
end

local C = ffi.C
local PASS, DROP = C.LD_PASS, C.LD_DROP
local SET_HOLD = C.LD_SET_HOLD
local NS_PER_MS = 1e6
local HOOK_LOCAL_OUT = 3    -- enum nf_inet_hooks (linux/netfilter.h)

local M = {}

--- shape.pipe{ options } -> a pipe. See docs/shaping.md for every option;
-- an error in the configuration raises at once, naming the option and the
-- caller's line.
M.pipe = pipe.pipe
--- shape.chain(p1, p2, ...) -> pipes applied in the order written; a packet
-- dropped by one goes no further.
M.chain = pipe.chain
--- shape.is_pipe(x) -> true for a pipe or a chain.
M.is_pipe = pipe.is_pipe
--- Restart the time base (tests and replays of several captures).
M.reset_clock = pipe.reset_clock

--- Parse a rate the way tc does: a number is bits per second; a string
-- takes tc's units ("kbit", "mbit", ... in bits; "bps", "kbps", ... in
-- BYTES per second; "kibit", "mibps", ... binary).
M.parse_rate = options.parse_rate
--- Parse a size in bytes, tc's way: a number is bytes; "64kb" = 65536.
M.parse_size = options.parse_size
--- Parse a duration in milliseconds: a number is ms; "1.5s", "250us" too.
M.parse_time = options.parse_time
--- Parse a probability: a number in [0, 1] or a string "N%".
M.parse_prob = options.parse_prob

--- Set the seed that pipes created from now on without an explicit `seed`
-- derive theirs from (`luadivert replay --seed N` sets it through
-- LUADIVERT_SEED). nil goes back to random seeds.
M.set_seed = options.set_seed

M.PASS, M.DROP = PASS, DROP

--- Self-test: a few exact decisions on synthetic descriptors (silent
-- unless it fails; tests/lua/shape_test.lua has the full checks).
function M.selftest()
	local d = ffi.new("struct ld_packet")
	local buf = ffi.new("uint8_t[1250]")
	buf[0], buf[2], buf[3], buf[9] = 0x45, 0x04, 0xe2, 17     -- IPv4, 1250 bytes, UDP
	d.data, d.len, d.cap, d.orig_len, d.hook = buf, 1250, 1250, 1250, HOOK_LOCAL_OUT
	local saved_set, saved_base = pipe.clock()
	M.reset_clock()
	local function send(p, t_ns)
		d.tstamp_ns, d.set, d.hold_ns, d.dup = t_ns, 0, 0, 0
		return p(d), tonumber(d.hold_ns)
	end
	local delay25 = M.pipe{ delay = 25, seed = 1 }
	local v, h = send(delay25, 5e9)
	assert(v == PASS and h == 25 * NS_PER_MS and bit.band(d.set, SET_HOLD) ~= 0, "delay 25 ms")
	local link = M.pipe{ rate = "1mbit", seed = 1 }            -- 1250 bytes = 10 ms
	assert(select(2, send(link, 5e9)) == 10 * NS_PER_MS, "rate: first packet")
	assert(select(2, send(link, 5e9)) == 20 * NS_PER_MS, "rate: second queues behind")
	assert(send(M.pipe{ loss = 1, seed = 1 }, 5e9) == DROP, "loss 1")
	local flowy = M.pipe{ rate = "1mbit", per_flow = true, seed = 1 }
	assert(select(2, send(flowy, 5e9)) == 10 * NS_PER_MS and flowy:stats().flows == 1, "per flow")
	assert(M.parse_rate("100kbps") == 800e3 and M.parse_size("64kb") == 65536, "units")
	pipe.set_clock(saved_set, saved_base)
	return true
end

-- Internals exposed for tests.
M._quantile = delay.quantile
M._DIST = delay.DISTS
M._collide = flows.collide

return M

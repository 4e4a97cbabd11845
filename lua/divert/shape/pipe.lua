-- divert.shape.pipe: the pipe object and the path of a packet through it
-- (internal to divert.shape; policies use shape.pipe{} and shape.chain()).
--
-- Inside one pipe a packet goes, in this order (as in a dummynet pipe with
-- netem's impairments):
--
--   loss (shape/loss.lua) ─► throttle ─► limit ─► rate (shape/rate.lua)
--   ─► delay line (shape/delay.lua) ─► duplicate, corrupt (shape/impair.lua)
--
-- with one state per pipe, or one per flow (shape/flows.lua). The pipe
-- writes its decision into the descriptor: a drop verdict, or LD_SET_HOLD
-- with hold_ns, the time until the packet's release.
--
-- Time: "now" is the packet's tstamp_ns, never the wall clock. All pipes
-- measure time in ns (doubles) from one base taken from the first packet,
-- minus a margin so that slightly earlier timestamps (a capture not quite
-- in order) stay positive. Doubles are exact to the ns for 104 days after
-- the base, even when tstamp_ns counts from 1970 (replay). A packet already
-- held (by an earlier pipe or pkt:hold) enters at its release time, so
-- pipes applied one after the other compose in the order written.
local ffi = require "ffi"
local bit = require "bit"
require "divert.abi"
local rng = require "divert.rng"
local metrics = require "divert.metrics"
local packet = require "divert.packet"
local V = require "divert.view"
local options = require "divert.shape.options"
local loss = require "divert.shape.loss"
local delay = require "divert.shape.delay"
local rate = require "divert.shape.rate"
local impair = require "divert.shape.impair"
local flows = require "divert.shape.flows"

local C = ffi.C
local band, bor, bnot = bit.band, bit.bor, bit.bnot
local floor = math.floor
local type, tonumber, setmetatable, error, pairs, ipairs, tostring =
	type, tonumber, setmetatable, error, pairs, ipairs, tostring
local pipe_out = metrics.pipe_out
local lost, throttle, full, link, wire_len, queue_push =
	loss.lost, rate.throttle, rate.full, rate.link, rate.wire_len, rate.queue_push
local reordered, release, impair_apply = delay.reordered, delay.release, impair.apply
local flow_state = flows.state

local PASS, DROP = C.LD_PASS, C.LD_DROP
local SET_HOLD = C.LD_SET_HOLD
local NOT_HOLD = bnot(C.LD_SET_HOLD)

local NS_PER_S = 1e9

-- Netfilter hook numbers (enum nf_inet_hooks in linux/netfilter.h).
local HOOK_LOCAL_IN, HOOK_LOCAL_OUT = 1, 3
local DIR_ANY, DIR_IN, DIR_OUT = 0, 1, 2

local M = {}

---------------------------------------------------------------------------
-- The time base
---------------------------------------------------------------------------

local BASE_MARGIN_NS = 3600 * NS_PER_S
local BASE_WRAP = 2^63              -- a timestamp before the base wrapped around
local base = ffi.new("uint64_t[1]")
local base_set = false

local function set_base(ts)
	local margin = ffi.new("uint64_t", BASE_MARGIN_NS)
	if ts > margin then base[0] = ts - margin else base[0] = 0 end
	base_set = true
end

local function rel_time(d)
	local ts = d.tstamp_ns
	if not base_set then set_base(ts) end
	local t = tonumber(ts - base[0])
	if t >= BASE_WRAP then t = 0 end
	return t
end

-- When the packet enters a pipe: its arrival, or its release time when
-- an earlier pipe (or pkt:hold) holds it already.
local function entry_time(d)
	local t = rel_time(d)
	if band(d.set, SET_HOLD) ~= 0 then t = t + tonumber(d.hold_ns) end
	return t
end

--- Restart the time base (tests and replays of several captures).
function M.reset_clock()
	base_set = false
	base[0] = 0
end

--- The time base, to save and restore around a self-test.
function M.clock() return base_set, base[0] end
function M.set_clock(set, b) base_set, base[0] = set, b end

---------------------------------------------------------------------------
-- The path of a packet
---------------------------------------------------------------------------

--- A pipe's (or one flow's) state: what every stage remembers.
local function new_state(p, seed)
	local st = {
		rng = rng.new(seed),
		lost = false,        -- correlated loss: was the last packet lost
		ge_bad = false,      -- Gilbert-Elliott: in the bad state
		last_seen = 0,       -- per flow: last arrival
		busy_until = 0,      -- per flow: latest release time given out
		id = 0, idx = 0,     -- per flow: divert.flow id, place in the pipe's list
	}
	delay.init_state(p, st)
	rate.init_state(p, st)
	impair.init_state(st)
	return st
end

--- Run one packet through one pipe's stages.
-- Return: its release time (ns from the base), or -1 when it is dropped.
local function stage(p, st, d, pk, t)
	local r = st.rng
	st.last_seen = t

	if lost(p, st, r) then p.n_lost = p.n_lost + 1; return -1 end
	if p.thr_frame > 0 then
		t = throttle(p, st, r, t)
		if t < 0 then return -1 end
	end
	local wlen = 0
	if p.rate_bps > 0 or p.has_limit then wlen = wire_len(p, d, pk) end
	if p.has_limit and full(p, st, t, wlen) then
		p.n_tail_dropped = p.n_tail_dropped + 1
		return -1
	end
	if p.rate_bps > 0 then t = link(p, st, t, wlen) end

	if not reordered(p, st, r) then
		t = release(p, st, r, t)
		if p.has_limit then queue_push(st, t, wlen) end
	end
	if t > st.busy_until then st.busy_until = t end

	impair_apply(p, st, r, d, pk)
	return t
end

--- Apply pipe p to packet object pk (its descriptor is pk.d, loaded here:
-- a descriptor pointer kept live across a loop, such as a chain's, would
-- be boxed, i.e. allocated, per packet).
-- Return: PASS (possibly held) or DROP.
local function apply(p, pk)
	local d = pk.d
	local dir = p.dir
	if dir ~= DIR_ANY then
		local hook = d.hook
		if dir == DIR_IN then
			if hook > HOOK_LOCAL_IN then return PASS end
		elseif hook < HOOK_LOCAL_OUT then
			return PASS
		end
	end
	-- Parse the headers now if the pipe will read them: here few values
	-- are live, while deep in the random branches a first parse (the IPv6
	-- walk) makes side traces too big for LuaJIT to compile. Later reads
	-- come from the packet object's cache.
	if p.reads_headers then pk:ip() end
	local t = entry_time(d)
	local st = p.state
	if not st then st = flow_state(p, pk, t) end
	p.n_packets = p.n_packets + 1
	local m = p.m     -- divert.metrics slot of a named pipe, or false
	if m then m.packets = m.packets + 1; m.bytes = m.bytes + d.len end
	t = stage(p, st, d, pk, t)
	if t < 0 then
		d.set = band(d.set, NOT_HOLD)
		d.hold_ns = 0
		p.n_dropped = p.n_dropped + 1
		if m then m.lost = m.lost + 1 end
		return DROP
	end
	-- The times the packet arrived and entered are read again from d
	-- (the stages change neither) rather than kept: fewer numbers live
	-- across the stages leave LuaJIT's register allocator room (with
	-- more, side traces of big policies fail to compile: "register
	-- coalescing too complex").
	if m then pipe_out(m, t - entry_time(d), t + tonumber(base[0])) end
	local t0 = rel_time(d)
	if t > t0 then
		local hold = floor(t - t0 + 0.5)
		if hold > 0 then
			d.set = bor(d.set, SET_HOLD)
			d.hold_ns = hold
			p.n_held = p.n_held + 1
		end
	end
	return PASS
end

-- What a pipe is given: a packet object (divert.packet) is used as it is,
-- so its parsed views serve the pipe too; a struct ld_packet (or a pointer
-- to one), or anything with a .d descriptor, gets the pipes' own packet
-- object attached (a few stores, no allocation).
local pkt_t, ld_packet_t = V.pkt_t, ffi.typeof("struct ld_packet")
local istype = ffi.istype
local own = packet.new()
local function packet_of(x)
	if istype(pkt_t, x) then return x end
	if istype(ld_packet_t, x) then return own:attach(x) end
	return own:attach(x.d)
end

---------------------------------------------------------------------------
-- Pipes and chains
---------------------------------------------------------------------------

local KEYS = {
	delay = true, jitter = true, distribution = true, correlation = true,
	loss = true, loss_correlation = true, gemodel = true,
	rate = true, overhead = true, burst = true, limit = true, mtu = true,
	reorder = true, every = true, fifo = true, duplicate = true, corrupt = true, keep_checksums = true,
	reorder_correlation = true, duplicate_correlation = true, corrupt_correlation = true,
	throttle = true, seed = true, direction = true, per_flow = true, idle = true,
	max_flows = true, name = true,
}

local Pipe = {}
Pipe.__index = Pipe

local COUNTERS = { "n_packets", "n_dropped", "n_held", "n_lost", "n_tail_dropped",
	"n_throttled", "n_reordered", "n_duplicated", "n_corrupted", "n_corrupt_skipped",
	"n_flows", "n_flows_expired", "n_flows_overflow" }

local function reset(p)
	for _, k in ipairs(COUNTERS) do p[k] = 0 end
	flows.reset(p)
	local seed = p.seed_value
	if p.flow_mode == flows.NONE then
		p.state = new_state(p, seed)
		p.overflow = false
	else
		p.state = false
		p.overflow = new_state(p, rng.derive(seed, 0x6f766572, 0))
	end
end

local function build(cfg)
	if type(cfg) ~= "table" then error("shape.pipe: expects a table of options", 0) end
	for k in pairs(cfg) do
		if not KEYS[k] then error(("shape.pipe: unknown option %q"):format(tostring(k)), 0) end
	end
	local p = setmetatable({}, Pipe)
	p.name = cfg.name and tostring(cfg.name) or "pipe"
	-- named pipes export their counters (docs/metrics.md)
	p.m = cfg.name ~= nil and metrics.pipe_slot(p.name) or false
	delay.configure(p, cfg)
	loss.configure(p, cfg)
	rate.configure(p, cfg)
	impair.configure(p, cfg)
	local dir = cfg.direction
	if dir == nil or dir == "any" or dir == "both" then p.dir = DIR_ANY
	elseif dir == "in" then p.dir = DIR_IN
	elseif dir == "out" then p.dir = DIR_OUT
	else options.bad("direction", ("%q is not \"in\", \"out\" or nil"):format(tostring(dir))) end
	flows.configure(p, cfg)
	p.reads_headers = p.flow_mode ~= flows.NONE or p.corrupt > 0
	p.new_state = new_state
	p.seed_value = options.seed(cfg)
	reset(p)
	return p
end

--- Build a pipe (shape.pipe); errors name the caller's line.
function M.pipe(cfg)
	local ok, p = pcall(build, cfg)
	if not ok then error(p, 2) end
	return p
end

--- Apply the pipe: `return pipe(pkt)` in a handler. pkt is a packet object
-- or a struct ld_packet (pointer), or a table with the descriptor in .d.
function Pipe.__call(p, pkt)
	return apply(p, packet_of(pkt))
end
Pipe.apply = Pipe.__call

--- The seed this pipe's decisions come from.
function Pipe:seed()
	return self.seed_value
end

--- Forget all state and counters and start again from the seed.
function Pipe:reset()
	reset(self)
end

--- Counters, as a new table (not for the per-packet path).
function Pipe:stats()
	local s = { name = self.name, seed = self.seed_value, flows_active = self.nflows }
	for _, k in ipairs(COUNTERS) do s[k:sub(3)] = self[k] end
	return s
end

function Pipe:__tostring()
	return ("shape.pipe(%s, seed %s)"):format(self.name, tostring(self.seed_value))
end

local Chain = {}
Chain.__index = Chain

--- Pipes applied in the order written (shape.chain).
function M.chain(...)
	local c = setmetatable({ n = 0 }, Chain)
	for i = 1, select("#", ...) do
		local x = select(i, ...)
		if getmetatable(x) == Chain then
			for j = 1, x.n do c.n = c.n + 1; c[c.n] = x[j] end
		elseif getmetatable(x) == Pipe then
			c.n = c.n + 1
			c[c.n] = x
		else
			error(("shape.chain: argument %d is not a pipe"):format(i), 2)
		end
	end
	return c
end

-- a packet dropped by one pipe goes no further
function Chain.__call(c, pkt)
	local pk = packet_of(pkt)
	for i = 1, c.n do
		if apply(c[i], pk) == DROP then return DROP end
	end
	return PASS
end
Chain.apply = Chain.__call

function Chain:stats()
	local s = {}
	for i = 1, self.n do s[i] = self[i]:stats() end
	return s
end

function Chain:reset()
	for i = 1, self.n do self[i]:reset() end
end

function M.is_pipe(x)
	return getmetatable(x) == Pipe or getmetatable(x) == Chain
end

return M

-- divert.shape.flows: per-flow state of a pipe (internal to divert.shape).
--
-- A pipe with per_flow keys its flows in a divert.flow table (the one flow
-- table of the library: its key, hash and probing) and keeps one shaping
-- state per flow id: its own link, queue, delay line, loss state and random
-- numbers, seeded from the pipe's seed and the flow's key. A state is made
-- when a flow first shows up (the only allocation of a per-flow pipe) and
-- dropped once the flow has been idle for `idle` seconds with nothing held:
-- one flow is looked at per packet, round robin, so there is never a pause
-- to scan the table (but when it is full). Flows beyond max_flows share one
-- overflow state, as do packets without an IP header.
local flow = require "divert.flow"
local rng = require "divert.rng"
local options = require "divert.shape.options"

local bad = options.bad
local type, tostring = type, tostring

local FLOW_NONE, FLOW_5TUPLE, FLOW_SRC, FLOW_DST = 0, 1, 2, 3
local MODES = { [true] = FLOW_5TUPLE, ["5tuple"] = FLOW_5TUPLE, src = FLOW_SRC, dst = FLOW_DST }
local KEYS = { [FLOW_5TUPLE] = "5tuple", [FLOW_SRC] = "src", [FLOW_DST] = "dst" }

local NS_PER_S = 1e9
local DEFAULT_IDLE_S = 60           -- per-flow state expires after this idle time
local DEFAULT_MAX_FLOWS = 65536     -- per pipe; beyond it flows share one state
local MAX_FLOWS = 2 ^ 26            -- divert.flow's largest table

local M = { NONE = FLOW_NONE }

local collide = false   -- tests: every flow hashes to one slot (shape._collide)
function M.collide(on) collide = on and true or false end

--- Read per_flow, idle and max_flows into pipe p.
function M.configure(p, cfg)
	local pf = cfg.per_flow
	if pf == nil or pf == false then p.flow_mode = FLOW_NONE
	else
		p.flow_mode = MODES[pf]
		if not p.flow_mode then
			bad("per_flow", ("%q is not true, \"5tuple\", \"src\" or \"dst\""):format(tostring(pf)))
		end
	end
	local idle = cfg.idle == nil and DEFAULT_IDLE_S or cfg.idle
	if type(idle) ~= "number" or idle <= 0 then bad("idle", "must be a positive number of seconds") end
	p.idle_ns = idle * NS_PER_S
	local mf = cfg.max_flows == nil and DEFAULT_MAX_FLOWS or cfg.max_flows
	if type(mf) ~= "number" or mf < 1 or mf > MAX_FLOWS then
		bad("max_flows", "must be a positive integer (at most 2^26)")
	end
	p.max_flows = mf
end

--- Forget every flow (pipe:reset()). The flow table itself is made at the
-- first packet: a pipe that sees none costs no table.
function M.reset(p)
	p.ftab = false
	p.fstate, p.flist, p.nflows, p.sweep_at = {}, {}, 0, 0
end

local function unlink(p, st)
	p.ftab:remove(st.id)
	p.fstate[st.id] = nil
	local list, n = p.flist, p.nflows
	local last = list[n]
	list[st.idx], last.idx = last, st.idx
	list[n] = nil
	p.nflows = n - 1
	p.n_flows_expired = p.n_flows_expired + 1
end

local function expired(p, st, t)
	return t - st.last_seen > p.idle_ns and t >= st.busy_until
end

--- Drop the state of every flow idle for longer than the pipe's idle time
-- with no packet still held (when the flow table is full).
local function sweep(p, t)
	local list = p.flist
	local i = 1
	while i <= p.nflows do
		local st = list[i]
		if expired(p, st, t) then
			unlink(p, st)       -- moves the last flow into slot i
		else
			i = i + 1
		end
	end
end

--- Look at one flow per packet, round robin, and drop it when it expired:
-- constant work per packet, no pause to scan a big table.
local function expire_step(p, t)
	local n = p.nflows
	if n == 0 then return end
	local c = p.sweep_at % n
	local st = p.flist[c + 1]
	if expired(p, st, t) then
		unlink(p, st)
	else
		c = c + 1
	end
	p.sweep_at = c
end

--- A new flow got id: make its state (once per flow).
local function add(p, id)
	local ft = p.ftab
	local st = p.new_state(p, rng.derive(p.seed_value, ft:key_hash(id), p.flow_mode))
	st.id = id
	p.fstate[id] = st
	local n = p.nflows + 1
	p.flist[n], st.idx, p.nflows = st, n, n
	p.n_flows = p.n_flows + 1
	return st
end

local function make_table(p)
	local ft = flow.table { size = p.max_flows, key = KEYS[p.flow_mode], _collide = collide }
	p.ftab = ft
	return ft
end

--- The state of the flow of packet object pk at time t (ns, pipe clock).
function M.state(p, pk, t)
	expire_step(p, t)
	local ft = p.ftab
	if not ft then ft = make_table(p) end
	local id, new = ft:lookup(pk)
	if id then
		if new then return add(p, id) end
		return p.fstate[id]
	end
	if new == "full" then
		sweep(p, t)
		id = ft:lookup(pk)
		if id then return add(p, id) end
		p.n_flows_overflow = p.n_flows_overflow + 1
	end
	return p.overflow    -- no IP header, or too many flows
end

function M.selftest()
	local p = {}
	M.configure(p, { per_flow = "src", idle = 2, max_flows = 3 })
	assert(p.flow_mode == FLOW_SRC and p.idle_ns == 2e9 and p.max_flows == 3)
	M.configure(p, {})
	assert(p.flow_mode == FLOW_NONE and p.max_flows == DEFAULT_MAX_FLOWS)
	assert(not pcall(M.configure, p, { per_flow = "port" }))
	assert(not pcall(M.configure, p, { max_flows = 0 }))
end

return M

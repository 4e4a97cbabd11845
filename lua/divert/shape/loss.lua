-- divert.shape.loss: loss models of a pipe (internal to divert.shape).
--
-- Random loss, optionally correlated (netem's `loss random P C`), or the
-- Gilbert-Elliott model (netem's `loss gemodel p r 1-h 1-k`). chance() is
-- the correlated yes/no decision that reorder, duplicate and corrupt use
-- too. Per packet: no allocation, straight-line code for the JIT.
local options = require "divert.shape.options"

local get, bad, parse_prob, correlated = options.get, options.bad, options.parse_prob, options.correlated
local type, pairs, tostring = type, pairs, tostring

local M = {}

--- A yes/no decision with probability p whose successive outcomes have a
-- lag-1 correlation rho: a two-state Markov chain, P(yes | last yes) =
-- p + rho (1 - p) and P(yes | last no) = p (1 - rho), so the long-run rate
-- stays exactly p (the caller passes both and keeps `last`).
local function chance(r, last, after_no, after_yes)
	local prob = after_no
	if last then prob = after_yes end
	return r:uniform() < prob
end
M.chance = chance

local GE_KEYS = { p = true, r = true, h = true, k = true, ["1-h"] = true, ["1-k"] = true }

--- Read loss, loss_correlation and gemodel into pipe p.
function M.configure(p, cfg)
	p.loss = get(cfg, "loss", parse_prob, 0)
	p.loss_no, p.loss_yes = correlated(cfg, "loss", p.loss)
	p.ge = false
	local g = cfg.gemodel
	if g == nil then return end
	if type(g) ~= "table" then bad("gemodel", "expects a table {p=, r=, h=, k=}") end
	if cfg.loss then bad("gemodel", "use either loss or gemodel, not both") end
	for k in pairs(g) do
		if not GE_KEYS[k] then
			bad("gemodel", ("unknown parameter %q (p, r, h, k, \"1-h\", \"1-k\")"):format(tostring(k)))
		end
	end
	if g.h ~= nil and g["1-h"] ~= nil then bad("gemodel", "give h or \"1-h\", not both") end
	if g.k ~= nil and g["1-k"] ~= nil then bad("gemodel", "give k or \"1-k\", not both") end
	local function prob(k, default) return get(g, k, parse_prob, default, "gemodel") end
	-- tc's defaults: r = 1 - p, 1-h = 1 (the bad state loses all),
	-- 1-k = 0 (the good state loses none).
	p.ge_p = prob("p", nil)
	if p.ge_p == nil then bad("gemodel", "p (good to bad transition probability) is required") end
	p.ge_r = prob("r", 1 - p.ge_p)
	p.ge_h = g["1-h"] ~= nil and 1 - prob("1-h") or prob("h", 0)
	p.ge_k = g["1-k"] ~= nil and 1 - prob("1-k") or prob("k", 1)
	p.ge = true
end

--- Is this packet lost? (st: the pipe's or the flow's state; r its rng)
function M.lost(p, st, r)
	if p.ge then
		local lost
		if st.ge_bad then
			lost = r:uniform() >= p.ge_h
			if r:uniform() < p.ge_r then st.ge_bad = false end
		else
			lost = r:uniform() >= p.ge_k
			if r:uniform() < p.ge_p then st.ge_bad = true end
		end
		return lost
	elseif p.loss > 0 then
		local lost = chance(r, st.lost, p.loss_no, p.loss_yes)
		st.lost = lost
		return lost
	end
	return false
end

function M.selftest()
	local rng = require "divert.rng"
	local p = {}
	M.configure(p, { gemodel = { p = 1, r = 0, ["1-h"] = 1 } })   -- bad at once, stays bad, loses all
	local st, r = { ge_bad = false }, rng.new(1)
	M.lost(p, st, r)
	assert(st.ge_bad and M.lost(p, st, r) and M.lost(p, st, r))
	M.configure(p, { loss = 1 })
	assert(M.lost(p, { lost = false }, r))
	assert(not pcall(M.configure, p, { loss = 0.1, gemodel = { p = 0.1 } }))
end

return M

-- divert.shape.delay: the delay line of a pipe (internal to divert.shape).
--
-- A fixed delay plus jitter drawn from netem's distributions (uniform,
-- normal, pareto, paretonormal), optionally correlated; FIFO unless
-- `fifo = false`; `reorder` lets a packet skip the line and overtake the
-- ones still in it. Per packet: no allocation, straight-line code.
local rng = require "divert.rng"
local options = require "divert.shape.options"
local chance = require("divert.shape.loss").chance

local get, bad, parse_time, parse_prob, correlated =
	options.get, options.bad, options.parse_time, options.parse_prob, options.correlated
local qnorm, pnorm = rng.qnorm, rng.pnorm
local tostring = tostring

local NS_PER_MS = 1e6

-- netem's distribution tables hold int16 values scaled by NETEM_DIST_SCALE
-- (8192), so every netem distribution is clipped to +-4 standard deviations.
local DIST_CLIP = 4
local U_MIN, U_MAX = 1e-12, 1 - 1e-12   -- keep quantiles finite

local DIST_UNIFORM, DIST_NORMAL, DIST_PARETO, DIST_PARETONORMAL = 1, 2, 3, 4
local DISTS = { uniform = DIST_UNIFORM, normal = DIST_NORMAL, pareto = DIST_PARETO,
	paretonormal = DIST_PARETONORMAL }

local M = { DISTS = DISTS }

-- netem's pareto table, computed instead of looked up: a Pareto with shape
-- 3 and scale 1, centred on its mean (1.5) and scaled by 4/3, in units of
-- the jitter; quantile of u.
local function pareto_q(u)
	local x = (4 / 3) * ((1 - u) ^ (-1 / 3) - 1.5)
	if x > DIST_CLIP then x = DIST_CLIP end
	return x
end

local function clip(x)
	if x > DIST_CLIP then return DIST_CLIP elseif x < -DIST_CLIP then return -DIST_CLIP end
	return x
end

--- Jitter in units of sigma for uniform u in (0,1), netem's shapes:
-- uniform on [-1, 1], normal, pareto, and paretonormal (a quarter normal
-- plus three quarters pareto, quantile by quantile as iproute2 builds it).
local function quantile(dist, u)
	if u < U_MIN then u = U_MIN elseif u > U_MAX then u = U_MAX end
	if dist == DIST_UNIFORM then
		return 2 * u - 1
	elseif dist == DIST_NORMAL then
		return clip(qnorm(u))
	elseif dist == DIST_PARETO then
		return pareto_q(u)
	end
	return clip((qnorm(u) + 3 * pareto_q(u)) / 4)
end
M.quantile = quantile

--- Read delay, jitter, distribution, correlation, reorder, every, fifo
-- (and reorder_correlation) into pipe p.
function M.configure(p, cfg)
	p.delay_ns = get(cfg, "delay", parse_time, 0) * NS_PER_MS
	p.jitter_ns = get(cfg, "jitter", parse_time, 0) * NS_PER_MS
	local dist = cfg.distribution or "uniform"
	p.dist = DISTS[dist]
	if not p.dist then bad("distribution", ("%q is not uniform, normal, pareto or paretonormal"):format(tostring(dist))) end
	local rho = get(cfg, "correlation", parse_prob, 0)
	if rho >= 1 then bad("correlation", "must be below 1") end
	p.rho, p.rho_c = rho, (1 - rho * rho) ^ 0.5

	-- Reorder: like netem, one packet out of `every` (default 1) with
	-- probability `reorder` (default 1 when `every` is given) skips the
	-- delay line and overtakes the packets still in it.
	p.reorder = get(cfg, "reorder", parse_prob, cfg.every and 1 or 0)
	p.reorder_gap = options.positive_int(cfg, "every", "must be a positive integer") or 1
	if p.reorder > 0 and p.delay_ns == 0 and p.jitter_ns == 0 then
		bad("reorder", "needs a delay: reordered packets overtake delayed ones")
	end
	p.reorder_no, p.reorder_yes = correlated(cfg, "reorder", p.reorder)

	-- fifo = false: every packet keeps its own sampled delay, so jitter
	-- reorders packets (netem's tfifo does this); default true: in order.
	if cfg.fifo ~= nil and type(cfg.fifo) ~= "boolean" then bad("fifo", "must be true or false") end
	p.fifo = cfg.fifo ~= false
end

--- The state a delay line starts with (fields of a pipe's or flow's state).
function M.init_state(p, st)
	st.last_rel = 0       -- release time of the last packet kept in order
	st.z = 0              -- correlated jitter: last normal variate
	st.ro_last = false    -- correlated reorder: last decision
	st.ro_count = 0       -- packets since the last reordered one
	if p.rho > 0 then st.z = qnorm(st.rng:uniform()) end
end

--- The next delay (ns) of a pipe with jitter. With a correlation rho, the
-- uniforms come from a Gaussian AR(1) process z' = rho z + sqrt(1-rho^2) e
-- mapped through the normal distribution function (a Gaussian copula): the
-- delays keep exactly the requested distribution, and successive ones are
-- correlated. (netem blends successive uniforms instead, which shrinks the
-- jitter as the correlation grows.)
local function jitter_delay(p, st, r)
	local rho = p.rho
	local q
	if rho > 0 then
		local z = rho * st.z + p.rho_c * qnorm(r:uniform())
		st.z = z
		if p.dist == DIST_NORMAL then q = clip(z) else q = quantile(p.dist, pnorm(z)) end
	else
		q = quantile(p.dist, r:uniform())
	end
	local dl = p.delay_ns + p.jitter_ns * q
	if dl < 0 then dl = 0 end
	return dl
end

--- Does this packet skip the delay line? (counts it in p.n_reordered)
function M.reordered(p, st, r)
	if p.reorder <= 0 then return false end
	local c = st.ro_count
	local yes = false
	if c >= p.reorder_gap - 1 then
		yes = chance(r, st.ro_last, p.reorder_no, p.reorder_yes)
		st.ro_last = yes
	end
	if yes then
		st.ro_count = 0
		p.n_reordered = p.n_reordered + 1
	else
		st.ro_count = c + 1
	end
	return yes
end

--- Release time of a packet that enters the delay line at t (in order).
function M.release(p, st, r, t)
	if p.jitter_ns > 0 then
		t = t + jitter_delay(p, st, r)
	else
		t = t + p.delay_ns
	end
	if p.fifo and t < st.last_rel then t = st.last_rel end
	st.last_rel = t
	return t
end

function M.selftest()
	assert(quantile(DIST_UNIFORM, 0.5) == 0 and quantile(DIST_NORMAL, 0.5) == 0)
	assert(quantile(DIST_NORMAL, 0) == -DIST_CLIP and quantile(DIST_PARETO, 1) == DIST_CLIP)
	local p = {}
	M.configure(p, { delay = 10, jitter = 0 })
	local st = { rng = rng.new(1) }
	M.init_state(p, st)
	assert(M.release(p, st, st.rng, 5) == 5 + 10 * NS_PER_MS)
	assert(not pcall(M.configure, p, { reorder = 0.5 }), "reorder needs a delay")
end

return M

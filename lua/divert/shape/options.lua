-- divert.shape.options: reading a pipe's options (internal to divert.shape).
--
-- The tc-style value parsers (shape.parse_rate, parse_size, parse_time,
-- parse_prob are these), the error every bad option raises, and the seeds
-- of pipes built without one. Runs when a pipe is built, never per packet.
local rng = require "divert.rng"

local floor, huge = math.floor, math.huge
local type, tonumber, error = type, tonumber, error

local M = {}

-- Configuration errors are raised without a position; shape.pipe adds the
-- caller's (the policy line that built the pipe).
function M.bad(key, msg)
	error(("shape.pipe: %s: %s"):format(key, msg), 0)
end
local bad = M.bad

local RATE_UNITS = {
	[""] = 1, bit = 1, kbit = 1e3, mbit = 1e6, gbit = 1e9, tbit = 1e12,
	kibit = 1024, mibit = 1024 ^ 2, gibit = 1024 ^ 3, tibit = 1024 ^ 4,
	bps = 8, kbps = 8e3, mbps = 8e6, gbps = 8e9, tbps = 8e12,
	kibps = 8 * 1024, mibps = 8 * 1024 ^ 2, gibps = 8 * 1024 ^ 3, tibps = 8 * 1024 ^ 4,
}

local SIZE_UNITS = {
	[""] = 1, b = 1, k = 1024, kb = 1024, m = 1024 ^ 2, mb = 1024 ^ 2, g = 1024 ^ 3, gb = 1024 ^ 3,
	kbit = 128, mbit = 128 * 1024, gbit = 128 * 1024 ^ 2,
}

local TIME_UNITS = { [""] = 1, ms = 1, msec = 1, s = 1e3, sec = 1e3, us = 1e-3, usec = 1e-3,
	ns = 1e-6 }

-- A parser for a number with a unit from @units, tc-style: a plain number
-- is in the base unit, a string is a number and a unit ("1.5mbit").
-- Return: the value in the base unit, or nil and a message.
local function unit_parser(units, what, example, positive)
	local sign = positive and "positive" or "non-negative"
	return function (v)
		if type(v) == "number" then
			if v == v and v < huge and (v > 0 or (v == 0 and not positive)) then return v end
			return nil, ("must be a %s number of %s"):format(sign, what)
		end
		if type(v) ~= "string" then
			return nil, ("must be a number of %s or a string like %q"):format(what, example)
		end
		local num, unit = v:lower():match("^%s*([%d%.]+)%s*(%a*)%s*$")
		local n, mul = tonumber(num), units[unit or "?"]
		if not n or not mul or (positive and n <= 0) then
			return nil, ("cannot parse %q as %s (e.g. %q)"):format(v, what, example)
		end
		return n * mul
	end
end

--- Parse a rate the way tc does: a number is bits per second; a string
-- takes tc's units ("kbit", "mbit", ... in bits; "bps", "kbps", ... in
-- BYTES per second; "kibit", "mibps", ... binary).
M.parse_rate = unit_parser(RATE_UNITS, "bits per second", "1mbit", true)
--- Parse a size in bytes, tc's way: a number is bytes; "64kb" = 65536.
M.parse_size = unit_parser(SIZE_UNITS, "bytes", "32kb", false)
--- Parse a duration in milliseconds: a number is ms; "1.5s", "250us" too.
M.parse_time = unit_parser(TIME_UNITS, "milliseconds", "20ms", false)

--- Parse a probability: a number in [0, 1] or a string "N%".
function M.parse_prob(v)
	if type(v) == "string" then
		local n = tonumber(v:match("^%s*([%d%.]+)%s*%%%s*$"))
		if not n then return nil, ("cannot parse %q (a number in [0,1] or \"N%%\")"):format(v) end
		v = n / 100
	end
	if type(v) ~= "number" or v ~= v or v < 0 or v > 1 then
		return nil, "must be a probability in [0, 1] (or a string like \"5%\")"
	end
	return v
end

--- cfg[key] through parse, or default when absent; a bad value raises an
-- error naming the option (prefix.key for a sub-table such as gemodel).
function M.get(cfg, key, parse, default, prefix)
	local v = cfg[key]
	if v == nil then return default end
	local x, err = parse(v)
	if x == nil then bad(prefix and prefix .. "." .. key or key, err) end
	return x
end

--- NAME_correlation: the probabilities of NAME after a "no" and after a
-- "yes" (see divert.shape.loss's chance()).
function M.correlated(cfg, name, prob)
	local key = name .. "_correlation"
	local rho = M.get(cfg, key, M.parse_prob, 0)
	if rho >= 1 then bad(key, "must be below 1") end
	return prob * (1 - rho), prob + rho * (1 - prob)
end

--- A positive integer option (nil stays nil).
function M.positive_int(cfg, key, msg)
	local v = cfg[key]
	if v ~= nil and (type(v) ~= "number" or v < 1 or v ~= floor(v)) then bad(key, msg) end
	return v
end

-- Seeds: an explicit `seed` wins; otherwise LUADIVERT_SEED (or
-- shape.set_seed) gives every pipe, in creation order, a seed derived from
-- it; otherwise the seed comes from /dev/urandom and pipe:seed() tells it.
local default_seed = tonumber(os.getenv("LUADIVERT_SEED") or "")
local seed_count = 0

local function random_seed()
	local f = io.open("/dev/urandom", "rb")
	if f then
		local s = f:read(6)
		f:close()
		if s and #s == 6 then
			local x = 0
			for i = 1, 6 do x = x * 256 + s:byte(i) end
			return x
		end
	end
	return (os.time() * 1000003 + floor(os.clock() * 1e6)) % 2^48
end

--- The seed option of a pipe, or the next derived (or random) seed.
function M.seed(cfg)
	if cfg.seed ~= nil then
		if type(cfg.seed) ~= "number" or cfg.seed ~= floor(cfg.seed) then bad("seed", "must be an integer") end
		return cfg.seed
	end
	seed_count = seed_count + 1
	if default_seed then return rng.derive(default_seed, seed_count, 0) end
	return random_seed()
end

--- shape.set_seed(n): the seed that pipes created from now on without an
-- explicit `seed` derive theirs from; nil goes back to random seeds.
function M.set_seed(n)
	if n ~= nil and type(n) ~= "number" then error("shape.set_seed: a number or nil", 2) end
	default_seed = n
	seed_count = 0
end

function M.selftest()
	assert(M.parse_rate("100kbps") == 800e3 and M.parse_size("64kb") == 65536)
	assert(M.parse_time("250us") == 0.25 and M.parse_prob("5%") == 0.05)
	assert(M.parse_rate("fast") == nil and M.parse_prob(1.5) == nil)
	local no, yes = M.correlated({ x_correlation = 0.5 }, "x", 0.1)
	assert(math.abs(no - 0.05) < 1e-12 and math.abs(yes - 0.55) < 1e-12)
	assert(not pcall(M.get, { rate = "fast" }, "rate", M.parse_rate, 0))
end

return M

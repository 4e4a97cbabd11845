--- divert.rng: a small, seeded, allocation-free random number generator.
--
-- xoshiro128** (Blackman and Vigna, 2018) on four 32-bit words kept as Lua
-- numbers and stepped with LuaJIT's `bit` operations, so every call compiles
-- to a handful of integer instructions and allocates nothing. The same seed
-- gives the same sequence on every machine and every run: shaping decisions
-- made with it are reproducible (see divert.shape).
--
--   local rng = require "divert.rng"
--   local r = rng.new(42)
--   r:uniform()    -- a number in (0, 1), never 0 nor 1
--   r:u32()        -- an integer in [0, 2^32)
--   r:below(n)     -- an integer in [0, n)
--   r:normal()     -- a standard normal variate
--
-- Also exported: rng.qnorm(p) (the standard normal quantile) and
-- rng.pnorm(z) (its distribution function), used to shape jitter.

local bit = require "bit"

local band, bxor, lshift, rshift, rol, tobit =
	bit.band, bit.bxor, bit.lshift, bit.rshift, bit.rol, bit.tobit
local floor, log, sqrt, exp, abs = math.floor, math.log, math.sqrt, math.exp, math.abs

local TWO32 = 4294967296        -- 2^32
local HALF32 = 2147483648       -- 2^31: shifts a signed word into [0, 2^32)
local GOLDEN = -1640531527      -- 0x9E3779B9 as a signed 32-bit word

local M = {}

--- a * b modulo 2^32 for two 32-bit words (signed or not); exact in doubles
-- because each partial product stays below 2^48.
local function mul32(a, b)
	local bl, bh = band(b, 0xffff), rshift(b, 16)
	return tobit(a * bl + lshift(tobit(a * bh), 16))
end
M.mul32 = mul32

--- murmur3's 32-bit finaliser: spreads every input bit over the word.
local function fmix32(h)
	h = bxor(h, rshift(h, 16))
	h = mul32(h, -2048144789)   -- 0x85EBCA6B
	h = bxor(h, rshift(h, 13))
	h = mul32(h, -1028477387)   -- 0xC2B2AE35
	return bxor(h, rshift(h, 16))
end
M.fmix32 = fmix32

--- Fold a seed (any integer a double holds exactly, or a 64-bit cdata
-- turned into a number by the caller) into two 32-bit words.
local function seed_words(seed)
	seed = tonumber(seed) or 0
	if seed ~= seed or seed == math.huge or seed == -math.huge then
		error("rng seed must be a finite number", 3)
	end
	seed = floor(seed)
	local lo = seed % TWO32
	local hi = floor(seed / TWO32) % TWO32
	return tobit(lo), tobit(hi)
end

local R = {}
R.__index = R

--- Reset the generator to the start of the sequence of @seed.
function R:seed(seed)
	local lo, hi = seed_words(seed)
	-- Four decorrelated, non-zero words from the seed (splitmix-style
	-- counter through fmix32); xoshiro's only bad state is all zeros.
	local x = bxor(lo, fmix32(hi + 0x1234567))
	self.s0 = fmix32(tobit(x + GOLDEN))
	self.s1 = fmix32(tobit(x + 2 * GOLDEN))
	self.s2 = fmix32(tobit(bxor(x, hi) + 3 * GOLDEN))
	self.s3 = fmix32(tobit(x + 4 * GOLDEN))
	if self.s0 == 0 and self.s1 == 0 and self.s2 == 0 and self.s3 == 0 then
		self.s0 = 1
	end
	self.seed_value = seed
	return self
end

--- The next output as a signed 32-bit word (the raw xoshiro128** step).
local function step(r)
	local s0, s1, s2, s3 = r.s0, r.s1, r.s2, r.s3
	local result = tobit(rol(tobit(s1 * 5), 7) * 9)
	local t = lshift(s1, 9)
	s2 = bxor(s2, s0)
	s3 = bxor(s3, s1)
	s1 = bxor(s1, s2)
	s0 = bxor(s0, s3)
	s2 = bxor(s2, t)
	s3 = rol(s3, 11)
	r.s0, r.s1, r.s2, r.s3 = s0, s1, s2, s3
	return result
end
R.step = step

--- An integer uniform in [0, 2^32).
function R:u32()
	return step(self) % TWO32
end

--- A number uniform in the open interval (0, 1): 2^32 equally likely
-- values, centred in their cells so that log() and quantiles never see 0 or 1.
function R:uniform()
	return (step(self) + HALF32 + 0.5) * (1 / TWO32)
end

--- An integer uniform in [0, n) for 1 <= n <= 2^32 (bias below 2^-32 * n).
function R:below(n)
	return floor(((step(self) + HALF32 + 0.5) * (1 / TWO32)) * n)
end

-- Standard normal quantile: Acklam's rational approximation (relative error
-- below 1.2e-9 over the whole open interval), enough for jitter in ns.
local A1, A2, A3, A4, A5, A6 = -3.969683028665376e+01, 2.209460984245205e+02,
	-2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00
local B1, B2, B3, B4, B5 = -5.447609879822406e+01, 1.615858368580409e+02,
	-1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01
local C1, C2, C3, C4, C5, C6 = -7.784894002430293e-03, -3.223964580411365e-01,
	-2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00
local D1, D2, D3, D4 = 7.784695709041462e-03, 3.224671290700398e-01,
	2.445134137142996e+00, 3.754408661907416e+00
local P_LOW, P_HIGH = 0.02425, 1 - 0.02425

local function qnorm(p)
	if p < P_LOW then
		local q = sqrt(-2 * log(p))
		return (((((C1 * q + C2) * q + C3) * q + C4) * q + C5) * q + C6) /
			((((D1 * q + D2) * q + D3) * q + D4) * q + 1)
	elseif p <= P_HIGH then
		local q = p - 0.5
		local r = q * q
		return (((((A1 * r + A2) * r + A3) * r + A4) * r + A5) * r + A6) * q /
			(((((B1 * r + B2) * r + B3) * r + B4) * r + B5) * r + 1)
	else
		local q = sqrt(-2 * log(1 - p))
		return -(((((C1 * q + C2) * q + C3) * q + C4) * q + C5) * q + C6) /
			((((D1 * q + D2) * q + D3) * q + D4) * q + 1)
	end
end
M.qnorm = qnorm

-- Standard normal distribution function through erfc (Chebyshev fit with
-- fractional error below 1.2e-7 everywhere; Numerical Recipes' erfcc).
local SQRT1_2 = 0.70710678118654752
local function pnorm(z)
	local x = -z * SQRT1_2
	local ax = abs(x)
	local t = 1 / (1 + 0.5 * ax)
	local r = t * exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 +
		t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 +
		t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
	if x < 0 then r = 2 - r end
	return 0.5 * r
end
M.pnorm = pnorm

--- A standard normal variate (one uniform through the quantile function,
-- so one draw per call: sequences stay easy to reason about).
function R:normal()
	return qnorm(self:uniform())
end

--- A copy of the generator in its current state.
function R:clone()
	local c = setmetatable({}, R)
	c.s0, c.s1, c.s2, c.s3, c.seed_value = self.s0, self.s1, self.s2, self.s3, self.seed_value
	return c
end

--- A new generator started from @seed (default 0).
function M.new(seed)
	return setmetatable({}, R):seed(seed or 0)
end

--- Derive a well-mixed 32-bit word from a seed and up to two more words
-- (e.g. a pipe's seed and a flow's hash) for seeding per-flow generators.
function M.derive(seed, a, b)
	local lo, hi = seed_words(seed)
	local h = fmix32(bxor(lo, fmix32(tobit(hi + GOLDEN))))
	h = fmix32(bxor(h, tobit((a or 0) + GOLDEN)))
	h = fmix32(bxor(h, tobit((b or 0) + 2 * GOLDEN)))
	return h % TWO32
end

M.Generator = R

--- Self-test: known properties, no output unless it fails.
function M.selftest()
	local a, b = M.new(7), M.new(7)
	for _ = 1, 1000 do assert(a:u32() == b:u32(), "same seed, same sequence") end
	local c = M.new(8)
	local same = 0
	for _ = 1, 1000 do if a:u32() == c:u32() then same = same + 1 end end
	assert(same < 5, "different seeds diverge")
	assert(abs(qnorm(0.975) - 1.959963984540054) < 1e-8, "qnorm(0.975)")
	assert(abs(qnorm(1e-6) + 4.753424308822899) < 1e-7, "qnorm(1e-6)")
	assert(abs(pnorm(1.959963984540054) - 0.975) < 1e-7, "pnorm")
	assert(mul32(0x7fffffff, 3) == tobit(0x7fffffff * 3 % TWO32), "mul32")
	-- Reference outputs of xoshiro128** from the state {1, 2, 3, 4}.
	local v = setmetatable({ s0 = 1, s1 = 2, s2 = 3, s3 = 4 }, R)
	assert(v:u32() == 11520 and v:u32() == 0 and v:u32() == 5927040, "xoshiro128** vectors")
	return true
end

return M

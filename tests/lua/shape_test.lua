-- tests/lua/shape_test.lua: divert.shape and divert.rng on a virtual clock.
-- Run from the repo root: luajit tests/lua/shape_test.lua
-- Synthetic packet descriptors carry tstamp_ns; the checks read the
-- decisions (verdict, hold_ns, dup, bytes) the pipes write into them.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
-- `--hot N` runs only hot-path case N (the full run starts each in its own process).
HOT_ONLY = arg and arg[1] == "--hot" and tonumber(arg[2]) or nil

local ffi = require "ffi"
local bit = require "bit"
local shape = require "divert.shape"
local rng = require "divert.rng"

local C = ffi.C
local PASS, DROP = C.LD_PASS, C.LD_DROP
local HOLD, MODIFIED = C.LD_SET_HOLD, C.LD_SET_MODIFIED
local HOOK_LOCAL_OUT, HOOK_PRE_ROUTING = 3, 0
local MS = 1e6

local failures, checks = 0, 0
local function check(name, ok, detail)
	checks = checks + 1
	if ok then
		print("ok - " .. name)
	else
		failures = failures + 1
		print("not ok - " .. name .. (detail and (": " .. tostring(detail)) or ""))
	end
end
local function near(a, b, tol) return math.abs(a - b) <= tol end

---------------------------------------------------------------------------
-- Packet builders with an independent reference checksum
---------------------------------------------------------------------------

local function ref_sum(bytes, from, to, s)
	for i = from, to, 2 do
		local hi = bytes[i] or 0
		local lo = (i + 1 <= to) and bytes[i + 1] or 0
		s = s + hi * 256 + lo
	end
	return s
end
local function ref_fold(s)
	while s > 0xffff do s = (s % 65536) + math.floor(s / 65536) end
	return s
end

-- bytes is a 0-based Lua table; returns true when the L4 checksum verifies.
local function l4_valid(buf, len)
	local b = {}
	for i = 0, len - 1 do b[i] = buf[i] end
	local ver = bit.rshift(b[0], 4)
	local off, proto, s
	if ver == 4 then
		off, proto = bit.band(b[0], 15) * 4, b[9]
		s = ref_sum(b, 12, 19, 0)
	else
		off, proto = 40, b[6]
		s = ref_sum(b, 8, 39, 0)
	end
	local n = len - off
	if proto == 17 and ver == 4 and b[off + 6] == 0 and b[off + 7] == 0 then return true end
	if proto == 1 then s = 0 else s = s + proto + n end
	s = ref_sum(b, off, len - 1, s)
	return ref_fold(s) == 0xffff
end

local function put16(buf, i, v) buf[i], buf[i + 1] = bit.rshift(v, 8), bit.band(v, 0xff) end

local function fill_l4_checksum(buf, len, coff)
	local b = {}
	buf[coff], buf[coff + 1] = 0, 0
	for i = 0, len - 1 do b[i] = buf[i] end
	local ver = bit.rshift(b[0], 4)
	local off, proto, s
	if ver == 4 then off, proto, s = bit.band(b[0], 15) * 4, b[9], ref_sum(b, 12, 19, 0)
	else off, proto, s = 40, b[6], ref_sum(b, 8, 39, 0) end
	s = s + proto + (len - off)
	s = ref_fold(ref_sum(b, off, len - 1, s))
	local c = 0xffff - s
	if c == 0 then c = 0xffff end
	put16(buf, coff, c)
end

-- IPv4 + UDP or TCP, payload bytes 0..n-1 patterned; valid checksums.
local function ip4(proto, sport, dport, npay, src, dst)
	local l4 = proto == 6 and 20 or 8
	local len = 20 + l4 + npay
	local buf = ffi.new("uint8_t[?]", len + 64)
	buf[0], buf[1] = 0x45, 0
	put16(buf, 2, len)
	put16(buf, 4, 0x1234)
	buf[8], buf[9] = 64, proto
	src, dst = src or 0xc6120001, dst or 0xc6120002
	for i = 0, 3 do
		buf[12 + i] = bit.band(bit.rshift(src, 24 - 8 * i), 0xff)
		buf[16 + i] = bit.band(bit.rshift(dst, 24 - 8 * i), 0xff)
	end
	local b = {}
	for i = 0, 19 do b[i] = buf[i] end
	put16(buf, 10, 0xffff - ref_fold(ref_sum(b, 0, 19, 0)))
	put16(buf, 20, sport)
	put16(buf, 22, dport)
	if proto == 17 then
		put16(buf, 24, 8 + npay)
	else
		buf[32] = 0x50  -- data offset 5 words
		buf[33] = 0x18
		put16(buf, 34, 1024)
	end
	for i = 0, npay - 1 do buf[20 + l4 + i] = (i * 7 + 3) % 256 end
	fill_l4_checksum(buf, len, 20 + (proto == 6 and 16 or 6))
	return buf, len
end

local function udp6(npay)
	local len = 40 + 8 + npay
	local buf = ffi.new("uint8_t[?]", len + 64)
	buf[0] = 0x60
	put16(buf, 4, 8 + npay)
	buf[6], buf[7] = 17, 64
	for i = 8, 39 do buf[i] = i end
	put16(buf, 40, 5000)
	put16(buf, 42, 53)
	put16(buf, 44, 8 + npay)
	for i = 0, npay - 1 do buf[48 + i] = (i * 13 + 1) % 256 end
	fill_l4_checksum(buf, len, 46)
	return buf, len
end

-- d.data is a raw pointer: it does not keep buf alive. Without this table
-- a desc(ip4(...)) could be read after the GC freed its bytes.
local anchors = setmetatable({}, { __mode = "k" })
local function desc(buf, len, t_ns, hook)
	local d = ffi.new("struct ld_packet")
	anchors[d] = buf
	d.data, d.len, d.cap, d.orig_len = buf, len, len + 64, len
	d.hook = hook or HOOK_LOCAL_OUT
	d.tstamp_ns = t_ns or 0
	d.verdict = PASS
	return d
end

local function rearm(d, t_ns)
	d.tstamp_ns = t_ns
	d.set, d.hold_ns, d.dup, d.verdict = 0, 0, 0, PASS
end

local T0 = 1e12  -- 1000 s of "uptime"; pipes measure from the first packet

local function hold_ms(d)
	if bit.band(d.set, HOLD) == 0 then return 0 end
	return tonumber(d.hold_ns) / MS
end

local function stats(xs)
	local n, s, s2 = #xs, 0, 0
	for i = 1, n do s = s + xs[i] end
	local m = s / n
	for i = 1, n do s2 = s2 + (xs[i] - m) ^ 2 end
	return m, math.sqrt(s2 / (n - 1))
end

if not HOT_ONLY then  -- the functional checks (skipped by --hot N)

---------------------------------------------------------------------------
-- rng
---------------------------------------------------------------------------

check("rng selftest", pcall(rng.selftest))
do
	local r = rng.new(123)
	local n, s, s2, lo, hi = 200000, 0, 0, 1, 0
	for _ = 1, n do
		local u = r:uniform()
		s, s2 = s + u, s2 + u * u
		if u < lo then lo = u end
		if u > hi then hi = u end
	end
	local m = s / n
	check("rng uniform mean 1/2", near(m, 0.5, 4 * math.sqrt(1 / 12 / n)), m)
	check("rng uniform variance 1/12", near(s2 / n - m * m, 1 / 12, 0.002))
	check("rng uniform open interval", lo > 0 and hi < 1)
	local counts = {}
	for i = 0, 9 do counts[i] = 0 end
	for _ = 1, 100000 do local k = r:below(10); counts[k] = counts[k] + 1 end
	local chi = 0
	for i = 0, 9 do chi = chi + (counts[i] - 10000) ^ 2 / 10000 end
	check("rng below(10) chi-square", chi < 30, chi)  -- 9 dof, p ~ 0.0004
	local a, b = rng.new(2 ^ 40 + 5), rng.new(5)
	check("rng seeds above 2^32 differ", a:u32() ~= b:u32())
end
for _, p in ipairs { 0.001, 0.02425, 0.3, 0.5, 0.9, 0.999 } do
	local z = rng.qnorm(p)
	check(("qnorm/pnorm round trip at %g"):format(p), near(rng.pnorm(z), p, 2e-7))
end

---------------------------------------------------------------------------
-- Configuration
---------------------------------------------------------------------------

check("parse_rate 1mbit", shape.parse_rate("1mbit") == 1e6)
check("parse_rate 100kbps is bytes", shape.parse_rate("100kbps") == 800e3)
check("parse_rate number is bits", shape.parse_rate(2e6) == 2e6)
check("parse_rate 1.5Mbit", shape.parse_rate("1.5Mbit") == 1.5e6)
check("parse_rate rejects junk", shape.parse_rate("fast") == nil)
check("parse_size 64kb", shape.parse_size("64kb") == 65536)
check("parse_time 1.5s", shape.parse_time("1.5s") == 1500)
check("parse_time 250us", shape.parse_time("250us") == 0.25)
check("parse_prob 5%", shape.parse_prob("5%") == 0.05)
check("parse_prob rejects 1.5", shape.parse_prob(1.5) == nil)

local function rejects(cfg, pattern, name)
	local ok, err = pcall(shape.pipe, cfg)
	check("rejects " .. name, not ok and tostring(err):find(pattern, 1, true) ~= nil, err)
end
rejects({ dleay = 10 }, "unknown option \"dleay\"", "unknown option")
rejects({ delay = 10, jitter = 2, distribution = "gauss" }, "distribution", "unknown distribution")
rejects({ reorder = 0.1 }, "reorder: needs a delay", "reorder without delay")
rejects({ loss = 2 }, "loss:", "loss above 1")
rejects({ rate = "fast" }, "rate:", "bad rate")
rejects({ burst = 1000 }, "burst: needs a rate", "burst without rate")
rejects({ gemodel = { r = 0.1 } }, "p (good to bad", "gemodel without p")
rejects({ gemodel = { p = 0.1, h = 0.1, ["1-h"] = 0.9 } }, "not both", "gemodel h and 1-h")
rejects({ direction = "sideways" }, "direction", "bad direction")
rejects({ delay = 5, reorder = 0.1, reorder_correlation = 1 }, "reorder_correlation: must be below 1", "correlation 1")
rejects({ per_flow = "port" }, "per_flow", "bad per_flow")
do
	local ok, err = pcall(shape.pipe, { delay = 10, seed = 1, name = "x" })
	check("error message names the caller's line", ok or tostring(err):find("shape_test.lua", 1, true))
end

---------------------------------------------------------------------------
-- Delay, FIFO, distributions
---------------------------------------------------------------------------

local buf, blen = ip4(17, 4000, 53, 100)

do
	shape.reset_clock()
	local p = shape.pipe{ delay = 100, seed = 1 }
	local d = desc(buf, blen, T0)
	local v = p(d)
	check("delay 100: verdict PASS", v == PASS)
	check("delay 100: HOLD set", bit.band(d.set, HOLD) ~= 0)
	check("delay 100: hold_ns exactly 100 ms", d.hold_ns == 100 * MS, tostring(d.hold_ns))
	rearm(d, T0 + 5 * MS)
	p(d)
	check("delay 100: second packet also 100 ms", d.hold_ns == 100 * MS)
	local p2 = shape.pipe{ delay = 0.0255, seed = 1 }
	rearm(d, T0 + 7)
	p2(d)
	check("fractional delay 25.5 us", d.hold_ns == 25500, tostring(d.hold_ns))
	local obj = { d = d }
	rearm(d, T0 + 9 * MS)
	p(obj)
	check("pipe accepts a packet object with .d", d.hold_ns == 100 * MS)
end

do  -- jitter without reorder keeps order: release times never go back
	shape.reset_clock()
	local p = shape.pipe{ delay = 50, jitter = 40, distribution = "normal", seed = 3 }
	local d = desc(buf, blen, T0)
	local last, inorder = -1, true
	for i = 0, 4999 do
		local t = T0 + i * 0.2 * MS
		rearm(d, t)
		p(d)
		local rel = t + tonumber(d.hold_ns)
		if rel < last then inorder = false end
		last = rel
	end
	check("jitter keeps FIFO order without reorder", inorder)
	shape.reset_clock()
	local pf = shape.pipe{ delay = 50, jitter = 40, distribution = "normal", fifo = false, seed = 3 }
	local back, exact = 0, true
	last = -1
	for i = 0, 4999 do
		local t = T0 + i * 0.2 * MS
		rearm(d, t)
		pf(d)
		local rel = t + tonumber(d.hold_ns)
		if rel < last then back = back + 1 end
		last = rel
	end
	check(("fifo = false: jitter reorders (%d of 5000)"):format(back), back > 1000)
end

-- Sample the delay distribution with packets far apart (FIFO never binds).
local function sample_delays(cfg, n)
	shape.reset_clock()
	local p = shape.pipe(cfg)
	local d = desc(buf, blen, T0)
	local xs = {}
	for i = 1, n do
		rearm(d, T0 + i * 10e9)
		p(d)
		xs[i] = hold_ms(d)
	end
	return xs
end

-- Mean and sd of quantile(u) by numerical integration (the exact target).
local function dist_moments(dist)
	local q = shape._quantile
	local N, s, s2 = 200000, 0, 0
	for i = 1, N do
		local x = q(shape._DIST[dist], (i - 0.5) / N)
		s, s2 = s + x, s2 + x * x
	end
	local m = s / N
	return m, math.sqrt(s2 / N - m * m)
end

for _, dist in ipairs { "uniform", "normal", "pareto", "paretonormal" } do
	local mu, sigma, n = 200, 20, 40000
	local xs = sample_delays({ delay = mu, jitter = sigma, distribution = dist, seed = 11 }, n)
	local m, sd = stats(xs)
	local em, esd = dist_moments(dist)
	em, esd = mu + sigma * em, sigma * esd
	check(("%s: mean %.2f ms ~ %.2f"):format(dist, m, em), near(m, em, 5 * esd / math.sqrt(n)))
	check(("%s: sd %.2f ms ~ %.2f"):format(dist, sd, esd), near(sd, esd, 0.03 * esd))
	table.sort(xs)
	local q = shape._quantile
	local okq = true
	for _, u in ipairs { 0.1, 0.5, 0.9 } do
		local want = mu + sigma * q(shape._DIST[dist], u)
		if not near(xs[math.floor(u * n)], want, 0.6) then okq = false end
	end
	check(dist .. ": deciles match netem's table shape", okq)
end
do
	local xs = sample_delays({ delay = 10, jitter = 10, distribution = "uniform", seed = 5 }, 20000)
	local lo, hi = math.huge, -math.huge
	for i = 1, #xs do lo, hi = math.min(lo, xs[i]), math.max(hi, xs[i]) end
	check("uniform jitter stays in [delay-jitter, delay+jitter]", lo >= 0 and hi <= 20)
	local xs2 = sample_delays({ delay = 5, jitter = 10, distribution = "normal", seed = 5 }, 5000)
	local neg = false
	for i = 1, #xs2 do if xs2[i] < 0 then neg = true end end
	check("delays below zero are clamped to zero", not neg)
end

local function lag1(xs)
	local m = stats(xs)
	local num, den = 0, 0
	for i = 1, #xs do
		den = den + (xs[i] - m) ^ 2
		if i > 1 then num = num + (xs[i] - m) * (xs[i - 1] - m) end
	end
	return num / den
end

do
	local n = 40000
	local xs = sample_delays({ delay = 100, jitter = 10, distribution = "normal", correlation = 0.6, seed = 8 }, n)
	local m, sd = stats(xs)
	local r1 = lag1(xs)
	check(("normal correlation 0.6: lag-1 %.3f"):format(r1), near(r1, 0.6, 0.03))
	check(("normal correlation keeps sd (%.2f ~ 10)"):format(sd), near(sd, 10 * 0.99966, 0.5))
	check("normal correlation keeps mean", near(m, 100, 0.5))
	local us = sample_delays({ delay = 100, jitter = 10, distribution = "uniform", correlation = 0.5, seed = 8 }, n)
	local um, usd = stats(us)
	check(("uniform correlation keeps the uniform sd (%.2f ~ %.2f)"):format(usd, 10 / math.sqrt(3)),
		near(usd, 10 / math.sqrt(3), 0.2))
	check("uniform correlation keeps the mean", near(um, 100, 0.3))
	check("uniform correlation is positive", lag1(us) > 0.4)
end

---------------------------------------------------------------------------
-- Loss
---------------------------------------------------------------------------

local function loss_run(cfg, n)
	shape.reset_clock()
	local p = shape.pipe(cfg)
	local d = desc(buf, blen, T0)
	local seq = {}
	local lost = 0
	for i = 1, n do
		rearm(d, T0 + i * MS)
		local v = p(d)
		seq[i] = v == DROP
		if v == DROP then lost = lost + 1 end
	end
	return lost / n, seq, p
end

do
	local n = 100000
	local f, _, p = loss_run({ loss = 0.2, seed = 21 }, n)
	check(("loss 0.2: %.4f within 4 sigma"):format(f), near(f, 0.2, 4 * math.sqrt(0.2 * 0.8 / n)))
	check("loss counted", p:stats().lost == math.floor(f * n + 0.5))
	local f2, seq = loss_run({ loss = 0.1, loss_correlation = 0.5, seed = 22 }, n)
	local ll, l = 0, 0
	for i = 2, n do if seq[i - 1] then l = l + 1; if seq[i] then ll = ll + 1 end end end
	check(("correlated loss keeps the rate: %.4f ~ 0.1"):format(f2), near(f2, 0.1, 0.01))
	check(("correlated loss P(loss|loss) %.3f ~ 0.55"):format(ll / l), near(ll / l, 0.55, 0.03))
	-- The same Markov chain drives reorder, duplicate and corrupt correlation.
	shape.reset_clock()
	local pd = shape.pipe{ duplicate = 0.2, duplicate_correlation = 0.6, seed = 24 }
	local dd = desc(buf, blen, T0)
	local dups, after, after_dup = 0, 0, 0
	local last = false
	for i = 1, n do
		rearm(dd, T0 + i * MS)
		pd(dd)
		local now = dd.dup > 0
		if now then dups = dups + 1 end
		if last then after = after + 1; if now then after_dup = after_dup + 1 end end
		last = now
	end
	check(("duplicate_correlation keeps the rate: %.4f ~ 0.2"):format(dups / n), near(dups / n, 0.2, 0.012))
	check(("duplicate_correlation: P(dup | dup) %.3f ~ 0.68"):format(after_dup / after),
		near(after_dup / after, 0.68, 0.03))
	local f3 = loss_run({ loss = "5%", seed = 23 }, n)
	check("loss as a percent string", near(f3, 0.05, 0.004))
end

do  -- Gilbert-Elliott
	local n = 200000
	local gp, gr, h, k = 0.05, 0.3, 0.2, 0.99
	local f, seq = loss_run({ gemodel = { p = gp, r = gr, h = h, k = k }, seed = 31 }, n)
	local want = (1 - k) * gr / (gp + gr) + (1 - h) * gp / (gp + gr)
	check(("gemodel loss %.4f ~ %.4f"):format(f, want), near(f, want, 0.01))
	local f2 = loss_run({ gemodel = { p = gp, r = gr, ["1-h"] = 1 - h, ["1-k"] = 1 - k }, seed = 31 }, n)
	check("gemodel 1-h/1-k spelling gives the same decisions", f2 == f)
	-- Simple Gilbert (defaults h = 0, k = 1): bursts of mean length 1/r.
	local f3, seq3 = loss_run({ gemodel = { p = 0.02, r = 0.25 }, seed = 32 }, n)
	local bursts, lostn = 0, 0
	for i = 1, n do
		if seq3[i] then lostn = lostn + 1; if not seq3[i - 1] then bursts = bursts + 1 end end
	end
	check(("simple Gilbert loss %.4f ~ %.4f"):format(f3, 0.02 / 0.27), near(f3, 0.02 / 0.27, 0.01))
	check(("simple Gilbert mean burst %.2f ~ 4"):format(lostn / bursts), near(lostn / bursts, 4, 0.3))
	local f4 = loss_run({ gemodel = { p = 0.01 }, seed = 33 }, n)
	check(("Bernoulli special case (only p): %.4f ~ 0.01"):format(f4), near(f4, 0.01, 0.002))
	local _ = seq
end

---------------------------------------------------------------------------
-- Rate, burst, limit
---------------------------------------------------------------------------

local big, biglen = ip4(17, 4000, 5001, 1250 - 28)  -- 1250-byte IP packets
do
	shape.reset_clock()
	local p = shape.pipe{ rate = "1mbit", seed = 1 }   -- 10 ms per packet
	local d = desc(big, biglen, T0)
	local ok = true
	for i = 1, 50 do
		rearm(d, T0)
		p(d)
		if d.hold_ns ~= i * 10 * MS then ok = false end
	end
	check("rate 1mbit: back-to-back 1250-byte packets leave every 10 ms, last bit out", ok)
	rearm(d, T0 + 2e9)   -- the link is idle again
	p(d)
	check("rate: idle link, one packet takes its own transmission time", d.hold_ns == 10 * MS)
end

do
	shape.reset_clock()
	local p = shape.pipe{ rate = "1mbit", burst = 12500, seed = 1 }  -- 10 packets of burst
	local d = desc(big, biglen, T0)
	local holds = {}
	for i = 1, 15 do rearm(d, T0); p(d); holds[i] = tonumber(d.hold_ns) / MS end
	local ok = true
	for i = 1, 10 do if holds[i] ~= 0 then ok = false end end
	for i = 11, 15 do if not near(holds[i], (i - 10) * 10, 1e-6) then ok = false end end
	check("token bucket: a full burst leaves at once, then the rate", ok, table.concat(holds, ","))
	local p2 = shape.pipe{ rate = "1mbit", overhead = 50, seed = 1 }
	shape.reset_clock()
	for i = 1, 3 do rearm(d, T0); p2(d); holds[i] = tonumber(d.hold_ns) end
	check("overhead counts in the rate: 1300 bytes = 10.4 ms",
		holds[1] == 10.4 * MS and holds[3] == 31.2 * MS)
end

do  -- long run: the achieved rate equals the target, for random arrivals
	shape.reset_clock()
	local p = shape.pipe{ rate = "10mbit", seed = 4 }
	local r = rng.new(9)
	local d = desc(big, biglen, T0)
	local t, last = T0, 0
	local n = 20000
	for _ = 1, n do
		t = t + r:uniform() * 1.5 * MS  -- mean offered load ~ 13 Mbit/s
		rearm(d, t)
		p(d)
		last = t + tonumber(d.hold_ns)
	end
	local rate = n * biglen * 8 / ((last - T0) / 1e9)
	check(("overloaded link delivers the rate: %.4f Mbit/s"):format(rate / 1e6), near(rate, 10e6, 0.01 * 10e6))
end

do
	shape.reset_clock()
	local p = shape.pipe{ rate = "1mbit", limit = 5, seed = 1 }
	local d = desc(big, biglen, T0)
	local passed = 0
	for _ = 1, 20 do rearm(d, T0); if p(d) == PASS then passed = passed + 1 end end
	check("limit 5 packets: 5 queued, 15 tail-dropped", passed == 5 and p:stats().tail_dropped == 15)
	rearm(d, T0 + 25 * MS)  -- two have left by now
	local v1 = p(d)
	rearm(d, T0 + 25 * MS)
	local v2 = p(d)
	rearm(d, T0 + 25 * MS)
	local v3 = p(d)
	check("limit: room again once packets left", v1 == PASS and v2 == PASS and v3 == DROP)
	local pb = shape.pipe{ rate = "1mbit", limit = "6250b", seed = 1 }
	shape.reset_clock()
	passed = 0
	for _ = 1, 20 do rearm(d, T0); if pb(d) == PASS then passed = passed + 1 end end
	check("limit in bytes: 6250 bytes hold 5 packets of 1250", passed == 5)
	local pg = shape.pipe{ rate = "1mbit", limit = "200kb", seed = 1 }
	shape.reset_clock()
	passed = 0
	for _ = 1, 300 do rearm(d, T0); if pg(d) == PASS then passed = passed + 1 end end
	check("byte limit ring grows past its first size", passed == 163, passed)
	local pd = shape.pipe{ delay = 100, limit = 10, seed = 1 }
	shape.reset_clock()
	passed = 0
	for i = 1, 30 do rearm(d, T0 + i * MS); if pd(d) == PASS then passed = passed + 1 end end
	check("limit counts packets in the delay line (netem)", passed == 10)
end

---------------------------------------------------------------------------
-- Reorder, duplicate, corrupt, throttle
---------------------------------------------------------------------------

do
	shape.reset_clock()
	local p = shape.pipe{ delay = 10, every = 4, seed = 1 }
	local d = desc(buf, blen, T0)
	local pattern = {}
	for i = 1, 12 do rearm(d, T0 + i * MS); p(d); pattern[i] = hold_ms(d) == 0 and "R" or "." end
	check("every = 4: each 4th packet goes ahead", table.concat(pattern) == "...R...R...R", table.concat(pattern))
	shape.reset_clock()
	local pr = shape.pipe{ delay = 10, reorder = 0.25, seed = 2 }
	local n, ahead, overtakes = 20000, 0, 0
	local last_rel = -1
	for i = 1, n do
		local t = T0 + i * MS
		rearm(d, t)
		pr(d)
		local rel = t + tonumber(d.hold_ns)
		if rel < last_rel then overtakes = overtakes + 1 end
		if hold_ms(d) == 0 then ahead = ahead + 1 end
		last_rel = math.max(last_rel, rel)
	end
	check(("reorder 0.25: %.3f sent ahead"):format(ahead / n), near(ahead / n, 0.25, 0.015))
	check("reordered packets overtake delayed ones", overtakes > 0.2 * n)
end

do
	shape.reset_clock()
	local p = shape.pipe{ duplicate = 0.1, seed = 3 }
	local d = desc(buf, blen, T0)
	local n, dups = 50000, 0
	for i = 1, n do rearm(d, T0 + i * MS); p(d); dups = dups + d.dup end
	check(("duplicate 0.1: %.4f"):format(dups / n), near(dups / n, 0.1, 4 * math.sqrt(0.09 / n)))
	shape.reset_clock()
	local p2 = shape.pipe{ duplicate = 1, seed = 3 }
	local p3 = shape.pipe{ duplicate = 1, seed = 4 }
	rearm(d, T0)
	shape.chain(p2, p3)(d)
	check("duplicates add up along a chain", d.dup == 2)
end

local function bits_differ(a, b, n)
	local diff = 0
	for i = 0, n - 1 do
		local x = bit.bxor(a[i], b[i])
		while x ~= 0 do diff = diff + bit.band(x, 1); x = bit.rshift(x, 1) end
	end
	return diff
end

local function corrupt_case(name, make, keep, notready, coff_in_l4)
	shape.reset_clock()
	local p = shape.pipe{ corrupt = 1, keep_checksums = keep, seed = 17 }
	local ok_bits, ok_csum, ok_hdr, ok_set = true, true, true, true
	for i = 1, 200 do
		local b, len, hdr = make()
		local orig = ffi.new("uint8_t[?]", len)
		ffi.copy(orig, b, len)
		local d = desc(b, len, T0 + i * MS)
		if notready then
			d.flags = C.LD_PKT_CSUM_NOTREADY
			-- As the kernel leaves it: the field holds the folded pseudo-header sum.
			local coff = hdr - 2
			if coff_in_l4 then coff = coff_in_l4 end
			b[coff], b[coff + 1] = 0x12, 0x34
		end
		p(d)
		local changed = bits_differ(orig, b, len)
		if notready then
			if keep then
				if not l4_valid(b, len) then ok_csum = false end
			else
				if l4_valid(b, len) then ok_csum = false end
			end
		else
			-- exactly one payload bit, plus the checksum field when kept
			local payload_diff = bits_differ(orig + hdr, b + hdr, len - hdr)
			if payload_diff ~= 1 then ok_bits = false end
			if changed ~= 1 and not keep then ok_bits = false end
			if l4_valid(b, len) ~= keep then ok_csum = false end
			local coff = coff_in_l4 or hdr - 2
			for j = 0, hdr - 1 do
				if orig[j] ~= b[j] and j ~= coff and j ~= coff + 1 then ok_hdr = false end
			end
		end
		if bit.band(d.set, MODIFIED) == 0 then ok_set = false end
	end
	check(name .. ": one payload bit flipped", ok_bits)
	check(name .. (keep and ": checksum still valid" or ": checksum now invalid"), ok_csum)
	check(name .. ": headers untouched", ok_hdr)
	check(name .. ": LD_SET_MODIFIED set", ok_set)
end

corrupt_case("corrupt udp4 keep", function () local b, l = ip4(17, 1, 2, 101); return b, l, 28 end, true)
corrupt_case("corrupt udp4 nokeep", function () local b, l = ip4(17, 1, 2, 100); return b, l, 28 end, false)
corrupt_case("corrupt tcp4 keep", function () local b, l = ip4(6, 1, 2, 333); return b, l, 40 end, true, false, 36)
corrupt_case("corrupt tcp4 nokeep", function () local b, l = ip4(6, 1, 2, 64); return b, l, 40 end, false, false, 36)
corrupt_case("corrupt udp6 keep", function () local b, l = udp6(77); return b, l, 48 end, true)
corrupt_case("corrupt udp6 nokeep", function () local b, l = udp6(64); return b, l, 48 end, false)
corrupt_case("corrupt udp4 csum-not-ready keep", function () local b, l = ip4(17, 1, 2, 99); return b, l, 28 end, true, true)
corrupt_case("corrupt udp4 csum-not-ready nokeep", function () local b, l = ip4(17, 1, 2, 99); return b, l, 28 end, false, true)
corrupt_case("corrupt tcp4 csum-not-ready keep", function () local b, l = ip4(6, 1, 2, 120); return b, l, 40 end, true, true, 36)
corrupt_case("corrupt udp6 csum-not-ready keep", function () local b, l = udp6(50); return b, l, 48 end, true, true)
do
	shape.reset_clock()
	local p = shape.pipe{ corrupt = 1, seed = 1 }
	local b, l = ip4(6, 1, 2, 0)    -- a bare ACK: nothing to corrupt
	local d = desc(b, l, T0)
	p(d)
	check("corrupt skips packets without payload (counted)", p:stats().corrupt_skipped == 1
		and bit.band(d.set, MODIFIED) == 0)
	local g = desc(ip4(17, 1, 2, 100))
	g.flags = C.LD_PKT_GSO
	g.tstamp_ns = T0
	p(g)
	check("corrupt leaves GSO packets alone", p:stats().corrupt_skipped == 2)
end

do
	shape.reset_clock()
	local p = shape.pipe{ throttle = { frame = 100, chance = 1 }, seed = 1 }
	local d = desc(buf, blen, T0)
	local rels = {}
	for i = 0, 9 do
		local t = T0 + i * 30 * MS
		rearm(d, t)
		p(d)
		rels[#rels + 1] = (t - T0) / MS + hold_ms(d)
	end
	check("throttle: packets of a frame leave together at its end",
		rels[1] == 100 and rels[4] == 100 and rels[5] == 220 and rels[8] == 220, table.concat(rels, ","))
	local pd = shape.pipe{ throttle = { frame = 100, chance = 1, drop = true }, seed = 1 }
	rearm(d, T0)
	check("throttle with drop drops", pd(d) == DROP)
end

---------------------------------------------------------------------------
-- Chains, direction, per-flow, seeds
---------------------------------------------------------------------------

do
	shape.reset_clock()
	local loss = shape.pipe{ loss = 1, seed = 1 }
	local rate = shape.pipe{ rate = "1mbit", seed = 1 }
	local delay = shape.pipe{ delay = 50, seed = 1 }
	local d = desc(big, biglen, T0)
	check("chain: a dropped packet goes no further", shape.chain(loss, rate, delay)(d) == DROP
		and rate:stats().packets == 0)
	local c = shape.chain(rate, delay)
	rearm(d, T0)
	c(d)
	check("chain: rate then delay adds up (10 + 50 ms)", d.hold_ns == 60 * MS)
	rearm(d, T0)
	c(d)
	check("chain: second packet queues behind the first (20 + 50 ms)", d.hold_ns == 70 * MS)
	shape.reset_clock()
	local r2 = shape.pipe{ rate = "1mbit", seed = 1 }
	local d2 = shape.pipe{ delay = 50, seed = 1 }
	rearm(d, T0)
	r2(d); d2(d)
	check("pipes applied one after another compose like a chain", d.hold_ns == 60 * MS)
	local nested = shape.chain(shape.chain(r2), d2)
	check("nested chains are flattened", nested.n == 2)
end

do
	shape.reset_clock()
	local p = shape.pipe{ delay = 20, direction = "in", seed = 1 }
	local d = desc(buf, blen, T0, HOOK_LOCAL_OUT)
	p(d)
	check("direction in: outbound packets untouched", d.set == 0 and p:stats().packets == 0)
	local di = desc(buf, blen, T0, HOOK_PRE_ROUTING)
	p(di)
	check("direction in: inbound packets delayed", di.hold_ns == 20 * MS)
	local po = shape.pipe{ delay = 20, direction = "out", seed = 1 }
	local dfw = desc(buf, blen, T0, 2)
	po(dfw)
	check("direction out: forwarded packets untouched", dfw.set == 0)
end

do
	shape.reset_clock()
	local p = shape.pipe{ rate = "1mbit", per_flow = true, idle = 1, seed = 1 }
	local a, alen = ip4(17, 1000, 53, 1250 - 28)
	local b, blen2 = ip4(17, 1001, 53, 1250 - 28)
	local da, db = desc(a, alen, T0), desc(b, blen2, T0)
	p(da); p(db)
	check("per_flow: two flows have their own link", da.hold_ns == 10 * MS and db.hold_ns == 10 * MS)
	rearm(da, T0); p(da)
	check("per_flow: same flow queues behind itself", da.hold_ns == 20 * MS)
	check("per_flow: two flows counted", p:stats().flows == 2 and p:stats().flows_active == 2)
	-- 5 s later both are idle (> 1 s): each packet looks at one flow, round robin.
	local first_hold
	for i = 1, 3 do rearm(da, T0 + 5e9 + i); p(da); first_hold = first_hold or da.hold_ns end
	check("per_flow: idle flows expire", p:stats().flows_expired == 2 and p:stats().flows_active == 1,
		p:stats().flows_expired .. " expired, " .. p:stats().flows_active .. " active")
	check("per_flow: a flow back from idle starts afresh", first_hold == 10 * MS)
	local ps = shape.pipe{ rate = "1mbit", per_flow = "src", seed = 1 }
	shape.reset_clock()
	rearm(da, T0); rearm(db, T0)
	ps(da); ps(db)
	check("per_flow src: same source shares one link", db.hold_ns == 20 * MS)
	local c, clen = ip4(17, 1000, 53, 1250 - 28, 0xc6120009)
	local dc = desc(c, clen, T0)
	ps(dc)
	check("per_flow src: another source has its own", dc.hold_ns == 10 * MS)
	local pm = shape.pipe{ rate = "1mbit", per_flow = true, max_flows = 2, seed = 1 }
	shape.reset_clock()
	for port = 1, 5 do
		local x, xl = ip4(17, port, 53, 100)
		pm(desc(x, xl, T0))
	end
	check("per_flow: flows beyond max_flows share one state (counted)",
		pm:stats().flows == 2 and pm:stats().flows_overflow == 3)
	-- Hash collisions: every flow on one chain; states stay apart and an
	-- expired flow in the middle of the chain is unlinked cleanly.
	shape._collide(true)
	shape.reset_clock()
	local pc = shape.pipe{ rate = "1mbit", per_flow = true, idle = 1, seed = 1 }
	local cd = {}
	for port = 1, 3 do cd[port] = desc(ip4(17, port, 53, 1250 - 28)) end
	local holds = {}
	for round = 1, 2 do
		for port = 1, 3 do rearm(cd[port], T0); pc(cd[port]); holds[#holds + 1] = tonumber(cd[port].hold_ns) / MS end
	end
	check("colliding flows keep separate states", table.concat(holds, ",") == "10,10,10,20,20,20",
		table.concat(holds, ","))
	-- flows 1 and 3 stay busy, flow 2 goes idle and expires
	for i = 1, 6 do
		local port = i % 2 == 0 and 1 or 3
		rearm(cd[port], T0 + 3e9 + i); pc(cd[port])
	end
	check("an expired flow leaves the collision chain", pc:stats().flows_active == 2
		and pc:stats().flows_expired >= 1, pc:stats().flows_active)
	rearm(cd[2], T0 + 3e9 + 10); pc(cd[2])
	check("the expired flow comes back with a fresh state", cd[2].hold_ns == 10 * MS,
		tostring(cd[2].hold_ns) .. " " .. pc:stats().flows)
	shape._collide(false)

	local p6 = shape.pipe{ delay = 1, per_flow = true, seed = 1 }
	local u6, u6l = udp6(10)
	p6(desc(u6, u6l, T0)); p6(desc(u6, u6l, T0))
	check("per_flow: IPv6 flows", p6:stats().flows == 1)
end

do  -- same seed, same decisions; other seed, other decisions
	local function run(seed, per_flow)
		shape.reset_clock()
		local p = shape.pipe{ delay = 30, jitter = 10, distribution = "paretonormal", correlation = 0.3,
			loss = 0.1, duplicate = 0.05, reorder = 0.1, rate = "5mbit", seed = seed, per_flow = per_flow }
		local d = desc(buf, blen, T0)
		local out = {}
		for i = 1, 3000 do
			rearm(d, T0 + i * 0.3 * MS)
			local v = p(d)
			out[i] = v == DROP and "D" or (tostring(d.hold_ns) .. "/" .. d.dup)
		end
		return table.concat(out, " ")
	end
	local a, b, c = run(99), run(99), run(100)
	check("same seed, same decisions", a == b)
	check("different seed, different decisions", a ~= c)
	check("same seed per flow, same decisions", run(5, true) == run(5, true))
	shape.set_seed(1234)
	local s1 = shape.pipe{ loss = 0.5 }:seed()
	local s2 = shape.pipe{ loss = 0.5 }:seed()
	shape.set_seed(1234)
	local s3 = shape.pipe{ loss = 0.5 }:seed()
	shape.set_seed(nil)
	check("set_seed: pipes derive distinct, repeatable seeds", s1 == s3 and s1 ~= s2)
end

do  -- timestamps from 1970 (replay) keep ns precision
	shape.reset_clock()
	local p = shape.pipe{ delay = 0.000001, seed = 1 }   -- 1 ns
	local d = desc(buf, blen)
	d.tstamp_ns = 1764160000123456789ULL
	p(d)
	check("epoch timestamps: 1 ns delay is exact", d.hold_ns == 1)
end

---------------------------------------------------------------------------
-- The shaping examples load and handle packets
---------------------------------------------------------------------------

do
	local packet = require "divert.packet"
	local divert = require "divert"
	local files = {}
	local ls = io.popen("ls scripts/examples/shape_*.lua 2>/dev/null")
	for f in ls:lines() do files[#files + 1] = f end
	ls:close()
	check("shaping examples found", #files >= 12, #files)
	local b4, l4 = ip4(17, 4000, 53, 100, 0xc6120001, 0xc0a80105)  -- to 192.168.1.5
	local bt, lt = ip4(6, 4000, 80, 500)
	local raw = { ffi.string(b4, l4), ffi.string(bt, lt), ffi.string(udp6(40)) }
	for _, f in ipairs(files) do
		shape.reset_clock()
		local ok, policy = pcall(dofile, f)
		local handler = ok and (type(policy) == "table" and policy.on_packet or policy)
		local good = ok and type(handler) == "function"
		local err = not ok and policy or nil
		if good then
			for i = 1, 300 do
				local pkt = packet.from_string(raw[i % 3 + 1], 2000)
				pkt.d.tstamp_ns = T0 + i * MS
				pkt.d.hook = i % 2 == 0 and HOOK_LOCAL_OUT or HOOK_PRE_ROUTING
				local ok2, v = pcall(handler, pkt)
				if not ok2 or not divert.is_verdict(v) then good, err = false, v; break end
			end
		end
		check(f .. " loads and handles IPv4/IPv6 packets", good, err)
	end
end

end  -- functional checks

---------------------------------------------------------------------------
-- Hot path: no allocation, no trace abort
---------------------------------------------------------------------------

local jit_ok, jutil = pcall(require, "jit.util")
local vmdef_ok, vmdef = pcall(require, "jit.vmdef")

local function hot_run(p, descs, n, t)
	local nd = #descs
	for i = 1, n do
		local d = descs[(i % nd) + 1]
		t = t + 20000
		d.tstamp_ns = t
		d.set, d.hold_ns, d.dup = 0, 0, 0
		p(d)
	end
	return t
end

-- Compiling a trace allocates its IR in the GC heap, and random decisions
-- keep growing side traces for a while; so the check looks for a window of
-- 200k packets in which no trace was recorded, and requires the heap not
-- to grow at all in it: then every packet ran compiled, allocation-free.
local function hot_check(name, p, descs)
	local aborts, recorded = {}, 0
	local function on_trace(what, tr, func, pc, otr, oex)
		if what == "start" then recorded = recorded + 1 end
		if what == "abort" then
			local msg = vmdef_ok and vmdef.traceerr[otr] or tostring(otr)
			if type(msg) == "string" and oex then msg = msg:format(oex) end
			local info = jit_ok and jutil.funcinfo(func, pc) or {}
			aborts[#aborts + 1] = tostring(msg) .. " at " .. tostring(info.loc)
		end
	end
	jit.flush()   -- an empty machine-code area: earlier checks cannot fill it
	jit.attach(on_trace, "trace")
	local t = hot_run(p, descs, 20000, 1e12)  -- warm up: traces get recorded
	local grown, quiet, rounds = 0, false, 0
	while not quiet and rounds < 40 do
		rounds = rounds + 1
		recorded = 0
		collectgarbage()
		collectgarbage("stop")
		local before = collectgarbage("count")
		t = hot_run(p, descs, 200000, t)
		grown = collectgarbage("count") - before
		collectgarbage("restart")
		quiet = recorded == 0
	end
	jit.attach(on_trace)
	-- A branch taken only a handful of times (a one-in-a-million random
	-- draw) never earns a side trace; each time the interpreter runs it, the
	-- trace exit may box a 64-bit field (a few dozen bytes). Hence a budget
	-- of 1 KB per 200k packets (0.005 bytes per packet), not exactly zero.
	check(("%s: 200k packets, no new trace, heap grew %.2f KB (%d rounds)"):format(
		name, grown, rounds), quiet and grown < 1, table.concat(aborts, "; "))
	local nyi = {}
	for _, a in ipairs(aborts) do if a:find("NYI", 1, true) then nyi[#nyi + 1] = a end end
	check(name .. ": no NYI trace abort", #nyi == 0, table.concat(nyi, "; "))
end

-- Each case runs in a fresh LuaJIT process: trace state (blacklists,
-- penalties, a full machine-code area) left by the other checks must not
-- decide the outcome, and a policy in the daemon starts fresh too.
local HOT_CASES = {
	{ "delay+jitter+loss+rate", function () return shape.pipe{ delay = 20, jitter = 5,
		distribution = "normal", correlation = 0.25, loss = 0.01, rate = "100mbit", limit = 1000,
		seed = 1 } end },
	{ "per-flow gemodel+reorder+dup", function () return shape.pipe{ delay = 20, reorder = 0.1,
		gemodel = { p = 0.01, r = 0.5 }, duplicate = 0.01, per_flow = true, seed = 2 } end },
	{ "chain", function () return shape.chain(shape.pipe{ loss = 0.05, seed = 3 },
		shape.pipe{ rate = "50mbit", burst = 3000, seed = 4 },
		shape.pipe{ delay = 10, jitter = 2, distribution = "pareto", seed = 5 }) end },
	{ "corrupt keep_checksums", function () return shape.pipe{ corrupt = 0.5,
		keep_checksums = true, seed = 6 } end },
	-- a named pipe also updates its metrics (divert.metrics): still compiled, no allocation
	{ "named pipe with metrics", function () return shape.pipe{ name = "hot", delay = 20,
		jitter = 5, loss = 0.01, seed = 7 } end },
}

local function hot_descs()
	local descs = {}
	for i = 1, 8 do descs[i] = desc(ip4(17, 1000 + i, 53, 200)) end
	return descs
end

if HOT_ONLY then
	local case = HOT_CASES[HOT_ONLY]
	hot_check("hot path " .. case[1], case[2](), hot_descs())
else
	local exe = arg and arg[-1] or "luajit"
	for i = 1, #HOT_CASES do
		local f = io.popen(("%s tests/lua/shape_test.lua --hot %d 2>&1"):format(exe, i))
		local out = f:read("*a")
		local ok = f:close()
		for line in out:gmatch("[^\n]+") do
			if line:match("^%d+ checks") then break end
			print(line)
			checks = checks + 1
			if line:match("^not ok") then failures = failures + 1 end
		end
		if not ok and not out:match("not ok") then
			check("hot path " .. HOT_CASES[i][1] .. ": subprocess ran", false, out)
		end
	end
end

print(("%d checks, %d failed"):format(checks, failures))
os.exit(failures == 0 and 0 or 1)

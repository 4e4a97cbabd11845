-- divert.shape.rate: the link of a pipe (internal to divert.shape).
--
-- Throttle (clumsy's: hold everything for a frame, then let it go at
-- once), limit (tail drop when the pipe holds `limit` packets or bytes; a
-- ring of the release times of the packets in the pipe), and rate (a link
-- of `rate` bits/s fed by a token bucket of `burst` bytes). The wire
-- length of a packet is its IP length (the original one when the copy was
-- truncated), a GSO packet counted as the segments it becomes, plus the
-- per-packet `overhead`. Per packet: no allocation, no loop (but to settle
-- the ring before a packet is refused).
local ffi = require "ffi"
local bit = require "bit"
require "divert.abi"
local options = require "divert.shape.options"

local get, bad, parse_rate, parse_size, parse_time, parse_prob =
	options.get, options.bad, options.parse_rate, options.parse_size, options.parse_time, options.parse_prob
local band = bit.band
local floor, ceil, huge = math.floor, math.ceil, math.huge
local type, tonumber, pairs, tostring = type, tonumber, pairs, tostring
local C = ffi.C
local PKT_GSO, PKT_TRUNCATED = C.LD_PKT_GSO, C.LD_PKT_TRUNCATED

local NS_PER_MS, NS_PER_S, BITS_PER_BYTE = 1e6, 1e9, 8
local DEFAULT_MTU = 1500            -- to count the segments of a GSO packet
local BYTE_RING_START = 64          -- first ring size for a byte limit

local uint32_array = ffi.typeof("uint32_t[?]")
local double_array = ffi.typeof("double[?]")

local M = {}

local function configure_limit(p, l)
	p.limit_pkts, p.limit_bytes = huge, huge
	if l == nil then return end
	if type(l) == "number" then
		if l < 1 or l ~= floor(l) then bad("limit", "a number of packets must be a positive integer") end
		p.limit_pkts = l
	elseif type(l) == "string" and l:lower():match("^%s*%d+%s*p") then
		p.limit_pkts = tonumber(l:match("%d+"))
		if p.limit_pkts < 1 then bad("limit", "must be at least 1 packet") end
	else
		local b, err = parse_size(l)
		if not b then bad("limit", err) end
		if b < 1 then bad("limit", "must be at least 1 byte") end
		p.limit_bytes = b
	end
end

local function configure_throttle(p, th)
	p.thr_frame, p.thr_chance, p.thr_drop = 0, 0, false
	if th == nil then return end
	if type(th) == "number" or type(th) == "string" then th = { frame = th } end
	if type(th) ~= "table" then bad("throttle", "expects {frame = ms, chance = p, drop = false}") end
	for k in pairs(th) do
		if k ~= "frame" and k ~= "chance" and k ~= "drop" then
			bad("throttle", ("unknown parameter %q (frame, chance, drop)"):format(tostring(k)))
		end
	end
	p.thr_frame = get(th, "frame", parse_time, 0, "throttle") * NS_PER_MS
	if p.thr_frame <= 0 then bad("throttle.frame", "must be > 0 ms") end
	p.thr_chance = get(th, "chance", parse_prob, 1, "throttle")
	p.thr_drop = th.drop == true
end

--- Read rate, overhead, burst, mtu, limit and throttle into pipe p.
function M.configure(p, cfg)
	p.rate_bps = get(cfg, "rate", parse_rate, 0)
	p.ns_per_byte = p.rate_bps > 0 and BITS_PER_BYTE * NS_PER_S / p.rate_bps or 0
	p.overhead = get(cfg, "overhead", parse_size, 0)
	p.burst = get(cfg, "burst", parse_size, 0)
	if p.burst > 0 and p.rate_bps == 0 then bad("burst", "needs a rate") end
	p.burst_ns = p.burst * p.ns_per_byte
	p.mtu = get(cfg, "mtu", parse_size, DEFAULT_MTU)
	configure_limit(p, cfg.limit)
	p.has_limit = p.limit_pkts < huge or p.limit_bytes < huge
	configure_throttle(p, cfg.throttle)
end

--- The state a link starts with (fields of a pipe's or flow's state).
function M.init_state(p, st)
	st.vtime = 0          -- rate: when the link has sent all it accepted
	st.thr_end = -1       -- throttle: end of the current frame
	st.q_t, st.q_l, st.q_cap, st.q_head, st.q_n, st.q_bytes = false, false, 0, 0, 0, 0
	if p.limit_pkts < huge then
		st.q_cap = p.limit_pkts
	elseif p.limit_bytes < huge then
		st.q_cap = BYTE_RING_START
	end
	if st.q_cap > 0 then
		st.q_t = double_array(st.q_cap)
		st.q_l = uint32_array(st.q_cap)
	end
end

--- Throttle: the time the packet arriving at t goes on at, or -1 when the
-- throttle drops it.
function M.throttle(p, st, r, t)
	if t < st.thr_end or r:uniform() < p.thr_chance then
		if t >= st.thr_end then st.thr_end = t + p.thr_frame end
		p.n_throttled = p.n_throttled + 1
		if p.thr_drop then return -1 end
		t = st.thr_end
	end
	return t
end

---------------------------------------------------------------------------
-- The ring of packets in the pipe (for the limit)
---------------------------------------------------------------------------

-- Forget packets that have left the pipe by time t (release times of the
-- in-order packets are non-decreasing, so they leave from the head).
-- queue_pop_one runs per packet without a loop, so the packet path stays
-- one straight trace; the count it leaves can only be too high, and
-- queue_pop_all settles it before a packet is refused.
local function queue_pop_one(st, t)
	local h = st.q_head
	if st.q_n > 0 and st.q_t[h] <= t then
		st.q_bytes = st.q_bytes - st.q_l[h]
		st.q_head = (h + 1) % st.q_cap
		st.q_n = st.q_n - 1
	end
end

local function queue_pop_all(st, t)
	local n = st.q_n
	local qt, ql, h, cap, bytes = st.q_t, st.q_l, st.q_head, st.q_cap, st.q_bytes
	while n > 0 and qt[h] <= t do
		bytes = bytes - ql[h]
		h = (h + 1) % cap
		n = n - 1
	end
	st.q_head, st.q_n, st.q_bytes = h, n, bytes
end

local function queue_grow(st)
	local cap = st.q_cap
	local qt, ql = double_array(cap * 2), uint32_array(cap * 2)
	for i = 0, st.q_n - 1 do
		local j = (st.q_head + i) % cap
		qt[i], ql[i] = st.q_t[j], st.q_l[j]
	end
	st.q_t, st.q_l, st.q_cap, st.q_head = qt, ql, cap * 2, 0
end

--- A packet of wlen bytes that leaves at t is in the pipe until then.
function M.queue_push(st, t, wlen)
	local n = st.q_n
	if n == st.q_cap then queue_grow(st) end
	local i = (st.q_head + n) % st.q_cap
	st.q_t[i], st.q_l[i] = t, wlen
	st.q_n, st.q_bytes = n + 1, st.q_bytes + wlen
end

--- Limit: true when the pipe is full at t for a packet of wlen bytes.
function M.full(p, st, t, wlen)
	queue_pop_one(st, t)
	if st.q_n >= p.limit_pkts or st.q_bytes + wlen > p.limit_bytes then
		queue_pop_all(st, t)
		return st.q_n >= p.limit_pkts or st.q_bytes + wlen > p.limit_bytes
	end
	return false
end

--- Rate: when a packet of wlen bytes arriving at t has left the link.
-- vtime is when the link will have sent everything accepted so far; the
-- packet leaves when its last bit has left (burst 0), or as soon as the
-- bucket holds its size (burst >= the packet).
function M.link(p, st, t, wlen)
	local v = st.vtime
	if v < t then v = t end
	v = v + wlen * p.ns_per_byte
	st.vtime = v
	v = v - p.burst_ns
	if v > t then t = v end
	return t
end

--- Wire length of the packet (descriptor d, packet object pk on it).
function M.wire_len(p, d, pk)
	local flags = d.flags
	local len = d.len
	if band(flags, PKT_TRUNCATED) ~= 0 then len = d.orig_len end
	local segs = 1
	if band(flags, PKT_GSO) ~= 0 and len > p.mtu then
		-- every segment repeats the IP and transport headers
		local ip = pk:ip()
		if ip then
			local hdr = ip.l4off
			if ip.frag == 0 and ip.l4proto == 6 then
				local tcp = pk:tcp()
				if tcp then hdr = hdr + tcp.hlen end
			elseif ip.frag == 0 and ip.l4proto == 17 then
				hdr = hdr + 8
			end
			if hdr < p.mtu then
				segs = ceil((len - hdr) / (p.mtu - hdr))
				len = len + (segs - 1) * hdr
			end
		end
	end
	return len + segs * p.overhead
end

function M.selftest()
	local p = { n_throttled = 0 }
	M.configure(p, { rate = "1mbit", limit = 2 })
	local st = {}
	M.init_state(p, st)
	assert(M.link(p, st, 0, 1250) == 10 * NS_PER_MS and M.link(p, st, 0, 1250) == 20 * NS_PER_MS)
	M.queue_push(st, 10, 1); M.queue_push(st, 20, 1)
	assert(M.full(p, st, 5, 1) and not M.full(p, st, 10, 1) and st.q_n == 1)
	local pb = {}
	M.configure(pb, { limit = "100b" })
	assert(pb.limit_bytes == 100 and pb.limit_pkts == huge)
	assert(not pcall(M.configure, pb, { burst = 10 }), "burst needs a rate")
end

return M

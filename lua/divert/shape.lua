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
-- See docs/shaping.md for the full reference and recipes.

local ffi = require "ffi"
require "divert.abi"
local bit = require "bit"
local rng = require "divert.rng"
local checksum = require "divert.checksum"
local metrics = require "divert.metrics"
local pipe_out = metrics.pipe_out

local C = ffi.C
local band, bor, bnot, bxor, lshift, rshift, tobit =
	bit.band, bit.bor, bit.bnot, bit.bxor, bit.lshift, bit.rshift, bit.tobit
local floor, ceil, huge = math.floor, math.ceil, math.huge
local type, tonumber, setmetatable, error, pairs = type, tonumber, setmetatable, error, pairs
local qnorm, pnorm = rng.qnorm, rng.pnorm

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

local PASS, DROP = C.LD_PASS, C.LD_DROP
local SET_HOLD, SET_MODIFIED = C.LD_SET_HOLD, C.LD_SET_MODIFIED
local NOT_HOLD = bnot(C.LD_SET_HOLD)
local PKT_GSO, PKT_CSUM_NOTREADY, PKT_TRUNCATED =
	C.LD_PKT_GSO, C.LD_PKT_CSUM_NOTREADY, C.LD_PKT_TRUNCATED

local NS_PER_MS = 1e6
local NS_PER_S = 1e9
local BITS_PER_BYTE = 8

-- Netfilter hook numbers (enum nf_inet_hooks in linux/netfilter.h).
local HOOK_LOCAL_IN, HOOK_LOCAL_OUT = 1, 3

-- IP protocol numbers.
local IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
local IPPROTO_SCTP, IPPROTO_UDPLITE = 132, 136
local IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_AH, IPV6_DSTOPTS = 0, 43, 44, 51, 60
local IPV4_HDR_MIN, IPV6_HDR_LEN = 20, 40
local IPV6_EXT_MAX = 8              -- extension headers walked before giving up

-- netem's distribution tables hold int16 values scaled by NETEM_DIST_SCALE
-- (8192), so every netem distribution is clipped to +-4 standard deviations.
local DIST_CLIP = 4
local U_MIN, U_MAX = 1e-12, 1 - 1e-12   -- keep quantiles finite

local DIST_UNIFORM, DIST_NORMAL, DIST_PARETO, DIST_PARETONORMAL = 1, 2, 3, 4
local DISTS = { uniform = DIST_UNIFORM, normal = DIST_NORMAL, pareto = DIST_PARETO,
	paretonormal = DIST_PARETONORMAL }

local DIR_ANY, DIR_IN, DIR_OUT = 0, 1, 2
local FLOW_NONE, FLOW_5TUPLE, FLOW_SRC, FLOW_DST = 0, 1, 2, 3

local DEFAULT_IDLE_S = 60           -- per-flow state expires after this idle time
local DEFAULT_MAX_FLOWS = 65536     -- per pipe; beyond it flows share one state
local DEFAULT_MTU = 1500            -- to count the segments of a GSO packet
local BYTE_RING_START = 64          -- first ring size for a byte limit

-- All pipes measure time in ns (doubles) from one base taken from the first
-- packet, minus a margin so that slightly earlier timestamps (a capture not
-- quite in order) stay positive. Doubles are exact to the ns for 104 days
-- after the base, even when tstamp_ns counts from 1970 (replay).
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

---------------------------------------------------------------------------
-- Parsing of the packet headers the pipes need (flow key, corrupt, GSO size)
---------------------------------------------------------------------------

local function be16(p, i) return p[i] * 256 + p[i + 1] end
local function be32(p, i) return ((p[i] * 256 + p[i + 1]) * 256 + p[i + 2]) * 256 + p[i + 3] end

--- Find the transport header.
-- Return: offset of the L4 header, protocol, IP version, end of the IP
-- packet (total length, bounded by len), and true when this is a fragment
-- other than the first (no L4 header in it). nil when not IPv4/IPv6 or
-- truncated.
local function l4_locate(p, len)
	if len < IPV4_HDR_MIN then return nil end
	local ver = rshift(p[0], 4)
	if ver == 4 then
		local ihl = band(p[0], 15) * 4
		if ihl < IPV4_HDR_MIN or ihl > len then return nil end
		local tot = be16(p, 2)
		if tot < ihl or tot > len then tot = len end
		local nonfirst = band(p[6], 0x1f) ~= 0 or p[7] ~= 0
		return ihl, p[9], 4, tot, nonfirst
	elseif ver == 6 then
		if len < IPV6_HDR_LEN then return nil end
		local tot = IPV6_HDR_LEN + be16(p, 4)
		if tot > len or tot == IPV6_HDR_LEN then tot = len end
		local nh, off, nonfirst = p[6], IPV6_HDR_LEN, false
		for _ = 1, IPV6_EXT_MAX do
			if nh == IPV6_HOPOPTS or nh == IPV6_ROUTING or nh == IPV6_DSTOPTS then
				if off + 8 > tot then return nil end
				nh, off = p[off], off + (p[off + 1] + 1) * 8
			elseif nh == IPV6_FRAGMENT then
				if off + 8 > tot then return nil end
				if be16(p, off + 2) >= 8 then nonfirst = true end  -- offset != 0
				nh, off = p[off], off + 8
			elseif nh == IPV6_AH then
				if off + 8 > tot then return nil end
				nh, off = p[off], off + (p[off + 1] + 2) * 4
			else
				break
			end
		end
		if off > tot then return nil end
		return off, nh, 6, tot, nonfirst
	end
	return nil
end

--- Where the transport checksum is, and where the payload starts.
-- Return: checksum offset from the L4 header (or -1 when the protocol's
-- checksum is not one we keep valid), payload offset from the L4 header;
-- nil when the L4 header is truncated.
local function l4_layout(p, off, proto, tot)
	if proto == IPPROTO_TCP then
		if off + 20 > tot then return nil end
		local doff = rshift(p[off + 12], 4) * 4
		if doff < 20 or off + doff > tot then return nil end
		return 16, doff
	elseif proto == IPPROTO_UDP then
		if off + 8 > tot then return nil end
		return 6, 8
	elseif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6 then
		if off + 8 > tot then return nil end
		return 2, 8
	end
	return -1, 0
end

---------------------------------------------------------------------------
-- Flow keys: the 5-tuple (or one address) as ten 32-bit words in a scratch
-- array, hashed to a number usable as a table key; the words are kept in
-- the flow's state and compared, so hash collisions are harmless. Fixed
-- size and no loops: the JIT compiles it as straight-line code.
--
--   [0] version << 8 | protocol   [1..4] source   [5..8] destination
--   [9] source port << 16 | destination port
-- (IPv4 addresses use one word, the rest stay zero; a word the mode leaves
-- out is zero.)
---------------------------------------------------------------------------

local KEY_WORDS = 10
local kbuf = ffi.new("uint32_t[?]", KEY_WORDS)
local uint32_array = ffi.typeof("uint32_t[?]")
local double_array = ffi.typeof("double[?]")
-- Two polynomial hashes of the key words modulo 2^32. Each step stays
-- below 2^53 (|h| < 2^31, multiplier < 2^21, word < 2^32), so the double
-- arithmetic is exact and bit.tobit takes it modulo 2^32: no call, no
-- division, nothing for the JIT to trip on.
local H1_MUL, H2_MUL = 1000003, 69069
local KEY_LOW_BITS = 2097152                 -- 2^21: key = h1 * 2^21 + h2 mod 2^21 < 2^53
local TWO31 = 2147483648

local function key_hash()
	local k = kbuf
	local a = tobit(k[0])
	a = tobit(a * H1_MUL + k[1]); a = tobit(a * H1_MUL + k[2]); a = tobit(a * H1_MUL + k[3])
	a = tobit(a * H1_MUL + k[4]); a = tobit(a * H1_MUL + k[5]); a = tobit(a * H1_MUL + k[6])
	a = tobit(a * H1_MUL + k[7]); a = tobit(a * H1_MUL + k[8]); a = tobit(a * H1_MUL + k[9])
	local b = tobit(k[9])
	b = tobit(b * H2_MUL + k[8]); b = tobit(b * H2_MUL + k[7]); b = tobit(b * H2_MUL + k[6])
	b = tobit(b * H2_MUL + k[5]); b = tobit(b * H2_MUL + k[4]); b = tobit(b * H2_MUL + k[3])
	b = tobit(b * H2_MUL + k[2]); b = tobit(b * H2_MUL + k[1]); b = tobit(b * H2_MUL + k[0])
	return a + TWO31, b + TWO31               -- as numbers in [0, 2^32)
end

local function key_equal(a)
	local k = kbuf
	return a[0] == k[0] and a[1] == k[1] and a[2] == k[2] and a[3] == k[3] and a[4] == k[4]
		and a[5] == k[5] and a[6] == k[6] and a[7] == k[7] and a[8] == k[8] and a[9] == k[9]
end

--- Fill kbuf with the flow key of a packet.
-- Return: false when the packet is not IP (or truncated), else true.
local function flow_key(p, len, mode)
	local off, proto, ver, tot, nonfirst = l4_locate(p, len)
	if off == nil then return false end
	local k = kbuf
	local src, dst = mode ~= FLOW_DST, mode ~= FLOW_SRC
	k[0] = ver * 256 + (mode == FLOW_5TUPLE and proto or 0)
	if ver == 4 then
		k[1] = src and be32(p, 12) or 0
		k[2], k[3], k[4] = 0, 0, 0
		k[5] = dst and be32(p, 16) or 0
		k[6], k[7], k[8] = 0, 0, 0
	else
		if src then
			k[1], k[2], k[3], k[4] = be32(p, 8), be32(p, 12), be32(p, 16), be32(p, 20)
		else
			k[1], k[2], k[3], k[4] = 0, 0, 0, 0
		end
		if dst then
			k[5], k[6], k[7], k[8] = be32(p, 24), be32(p, 28), be32(p, 32), be32(p, 36)
		else
			k[5], k[6], k[7], k[8] = 0, 0, 0, 0
		end
	end
	local ports = 0
	if mode == FLOW_5TUPLE and not nonfirst and off + 4 <= tot and (proto == IPPROTO_TCP
		or proto == IPPROTO_UDP or proto == IPPROTO_SCTP or proto == IPPROTO_UDPLITE) then
		ports = be32(p, off)
	end
	k[9] = ports
	return true
end

---------------------------------------------------------------------------
-- Pipe state (one per pipe, or one per flow)
---------------------------------------------------------------------------

local function new_state(p, seed)
	local st = {
		rng = rng.new(seed),
		last_rel = 0,        -- release time of the last packet kept in order
		z = 0,               -- correlated jitter: last normal variate
		lost = false,        -- correlated loss: was the last packet lost
		ro_last = false,     -- correlated reorder, duplicate, corrupt: last decision
		dup_last = false,
		cor_last = false,
		ge_bad = false,      -- Gilbert-Elliott: in the bad state
		vtime = 0,           -- rate: when the link has sent all it accepted
		ro_count = 0,        -- reorder: packets since the last reordered one
		thr_end = -1,        -- throttle: end of the current frame
		q_t = false, q_l = false, q_cap = 0, q_head = 0, q_n = 0, q_bytes = 0,
		last_seen = 0,       -- per flow: last arrival
		busy_until = 0,      -- per flow: latest release time given out
		key = false, hkey = 0, chain = false, idx = 0,
	}
	if p.rho > 0 then st.z = qnorm(st.rng:uniform()) end
	if p.limit_pkts < huge then
		st.q_cap = p.limit_pkts
	elseif p.limit_bytes < huge then
		st.q_cap = BYTE_RING_START
	end
	if st.q_cap > 0 then
		st.q_t = double_array(st.q_cap)
		st.q_l = uint32_array(st.q_cap)
	end
	return st
end

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

local function queue_push(st, t, len)
	local n = st.q_n
	if n == st.q_cap then queue_grow(st) end
	local i = (st.q_head + n) % st.q_cap
	st.q_t[i], st.q_l[i] = t, len
	st.q_n, st.q_bytes = n + 1, st.q_bytes + len
end

---------------------------------------------------------------------------
-- Per-flow lookup and expiry
---------------------------------------------------------------------------

local function unlink_flow(p, st)
	local flows = p.flows
	local head = flows[st.hkey]
	if head == st then
		flows[st.hkey] = st.chain or nil
	else
		while head and head.chain ~= st do head = head.chain end
		if head then head.chain = st.chain end
	end
	local list, n = p.flist, p.nflows
	local last = list[n]
	list[st.idx], last.idx = last, st.idx
	list[n] = nil
	p.nflows = n - 1
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
			unlink_flow(p, st)       -- moves the last flow into slot i
			p.n_flows_expired = p.n_flows_expired + 1
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
		unlink_flow(p, st)
		p.n_flows_expired = p.n_flows_expired + 1
	else
		c = c + 1
	end
	p.sweep_at = c
end

--- A flow not found at its hash's head: walk the collision chain, or make
-- its state (the only allocation of a per-flow pipe, once per flow).
local function flow_slow(p, hkey, h1, h2, t)
	local st = p.flows[hkey]
	while st do
		if key_equal(st.key) then return st end
		st = st.chain
	end
	if p.nflows >= p.max_flows then
		sweep(p, t)
		if p.nflows >= p.max_flows then
			p.n_flows_overflow = p.n_flows_overflow + 1
			return p.overflow
		end
	end
	st = new_state(p, rng.derive(p.seed_value, h1, h2))
	local key = uint32_array(KEY_WORDS)
	ffi.copy(key, kbuf, KEY_WORDS * 4)
	st.key, st.hkey = key, hkey
	st.chain = p.flows[hkey] or false
	p.flows[hkey] = st
	local n = p.nflows + 1
	p.flist[n], st.idx, p.nflows = st, n, n
	p.n_flows = p.n_flows + 1
	return st
end

local collide = false   -- tests: every flow gets the same hash (M._collide)

local function flow_state(p, d, t)
	expire_step(p, t)
	if not flow_key(d.data, d.len, p.flow_mode) then return p.overflow end
	local h1, h2 = key_hash()
	if collide then h1, h2 = 0, 0 end
	local hkey = h1 * KEY_LOW_BITS + h2 % KEY_LOW_BITS
	local st = p.flows[hkey]
	if st and key_equal(st.key) then return st end
	return flow_slow(p, hkey, h1, h2, t)
end

---------------------------------------------------------------------------
-- Random variates
---------------------------------------------------------------------------

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

---------------------------------------------------------------------------
-- Corrupt: flip one random bit of the transport payload
---------------------------------------------------------------------------

local function corrupt(p, r, d)
	local flags = d.flags
	if band(flags, PKT_GSO + PKT_TRUNCATED) ~= 0 then return false end
	local data, len = d.data, d.len
	local off, proto, ver, tot, nonfirst = l4_locate(data, len)
	if off == nil then return false end
	local coff, poff = -1, 0
	if not nonfirst then
		coff, poff = l4_layout(data, off, proto, tot)
		if coff == nil then return false end
	end
	local keep = p.keep_checksums
	if coff < 0 and keep then return false end  -- a checksum we cannot keep valid
	local plen = tot - off - poff
	if plen <= 0 then return false end
	-- No checksum at all: UDP over IPv4 with a zero checksum.
	local has_csum = coff >= 0 and not (proto == IPPROTO_UDP and ver == 4 and
		band(flags, PKT_CSUM_NOTREADY) == 0 and data[off + 6] == 0 and data[off + 7] == 0)
	if has_csum and band(flags, PKT_CSUM_NOTREADY) ~= 0 then
		-- The kernel left the checksum for the NIC; once the bytes change it
		-- marks the packet CHECKSUM_NONE and nobody finishes it: do it here.
		checksum.fill_l4(data, ver, data + off, tot - off, proto)
	end
	local i = off + poff + r:below(plen)
	local old = data[i]
	local new = bxor(old, lshift(1, r:below(8)))
	if keep and has_csum then
		-- RFC 1624 incremental update for the 16-bit word m that changed.
		local w = i
		if band(i - off, 1) == 1 then w = i - 1 end
		local lo = 0
		if w + 1 < tot then lo = data[w + 1] end
		local m, m2
		if w == i then m, m2 = old * 256 + lo, new * 256 + lo
		else m, m2 = data[w] * 256 + old, data[w] * 256 + new end
		-- 0 goes out as 0xffff (the same in ones' complement; for UDP 0 means
		-- "no checksum"): (c - 1) % 0xffff + 1, without a rarely taken branch.
		local c = (checksum.update16(be16(data, off + coff), m, m2) - 1) % 0xffff + 1
		data[off + coff], data[off + coff + 1] = rshift(c, 8), band(c, 0xff)
	end
	data[i] = new
	d.set = bor(d.set, SET_MODIFIED)
	return true
end

---------------------------------------------------------------------------
-- Wire length for the rate: the IP length (the original one when the copy
-- was truncated), a GSO packet counted as the segments it becomes, plus the
-- per-packet overhead.
---------------------------------------------------------------------------

local function wire_len(p, d)
	local flags = d.flags
	local len = d.len
	if band(flags, PKT_TRUNCATED) ~= 0 then len = d.orig_len end
	local segs = 1
	if band(flags, PKT_GSO) ~= 0 and len > p.mtu then
		local off, proto, _, tot = l4_locate(d.data, d.len)
		if off ~= nil then
			local _, poff = l4_layout(d.data, off, proto, tot)
			local hdr = off + (poff or 0)
			if hdr < p.mtu then
				segs = ceil((len - hdr) / (p.mtu - hdr))
				len = len + (segs - 1) * hdr
			end
		end
	end
	return len + segs * p.overhead
end

---------------------------------------------------------------------------
-- The pipe itself
---------------------------------------------------------------------------

--- A yes/no decision with probability p whose successive outcomes have a
-- lag-1 correlation rho: a two-state Markov chain, P(yes | last yes) =
-- p + rho (1 - p) and P(yes | last no) = p (1 - rho), so the long-run rate
-- stays exactly p (the caller passes both and keeps `last`).
local function chance(r, last, after_no, after_yes)
	local prob = after_no
	if last then prob = after_yes end
	return r:uniform() < prob
end

--- Run one packet through one pipe's stages.
-- Return: its release time (ns from the base), or -1 when it is dropped.
local function stage(p, st, d, t)
	local r = st.rng
	st.last_seen = t

	-- Loss.
	if p.ge then
		local lost
		if st.ge_bad then
			lost = r:uniform() >= p.ge_h
			if r:uniform() < p.ge_r then st.ge_bad = false end
		else
			lost = r:uniform() >= p.ge_k
			if r:uniform() < p.ge_p then st.ge_bad = true end
		end
		if lost then p.n_lost = p.n_lost + 1; return -1 end
	elseif p.loss > 0 then
		local lost = chance(r, st.lost, p.loss_no, p.loss_yes)
		st.lost = lost
		if lost then p.n_lost = p.n_lost + 1; return -1 end
	end

	-- Throttle (clumsy): hold everything for a frame, then let it go at once.
	if p.thr_frame > 0 then
		if t < st.thr_end or r:uniform() < p.thr_chance then
			if t >= st.thr_end then st.thr_end = t + p.thr_frame end
			if p.thr_drop then p.n_throttled = p.n_throttled + 1; return -1 end
			t = st.thr_end
			p.n_throttled = p.n_throttled + 1
		end
	end

	-- Limit: tail drop when the pipe already holds limit packets or bytes.
	local wlen = 0
	if p.rate_bps > 0 or p.has_limit then wlen = wire_len(p, d) end
	if p.has_limit then
		queue_pop_one(st, t)
		if st.q_n >= p.limit_pkts or st.q_bytes + wlen > p.limit_bytes then
			queue_pop_all(st, t)
			if st.q_n >= p.limit_pkts or st.q_bytes + wlen > p.limit_bytes then
				p.n_tail_dropped = p.n_tail_dropped + 1
				return -1
			end
		end
	end

	-- Rate: a link of rate_bps fed by a token bucket of burst bytes. vtime
	-- is when the link will have sent everything accepted so far; the packet
	-- leaves when its last bit has left (burst 0), or as soon as the bucket
	-- holds its size (burst >= the packet).
	if p.rate_bps > 0 then
		local v = st.vtime
		if v < t then v = t end
		v = v + wlen * p.ns_per_byte
		st.vtime = v
		v = v - p.burst_ns
		if v > t then t = v end
	end

	-- Delay line, in order unless this packet is reordered.
	local reordered = false
	if p.reorder > 0 then
		local c = st.ro_count
		if c >= p.reorder_gap - 1 then
			reordered = chance(r, st.ro_last, p.reorder_no, p.reorder_yes)
			st.ro_last = reordered
		end
		if reordered then
			st.ro_count = 0
			p.n_reordered = p.n_reordered + 1
		else
			st.ro_count = c + 1
		end
	end
	if not reordered then
		if p.jitter_ns > 0 then
			t = t + jitter_delay(p, st, r)
		else
			t = t + p.delay_ns
		end
		if p.fifo and t < st.last_rel then t = st.last_rel end
		st.last_rel = t
		if p.has_limit then queue_push(st, t, wlen) end
	end
	if t > st.busy_until then st.busy_until = t end

	-- Duplicate and corrupt.
	if p.duplicate > 0 then
		local dup = chance(r, st.dup_last, p.duplicate_no, p.duplicate_yes)
		st.dup_last = dup
		if dup then
			d.dup = d.dup + 1
			p.n_duplicated = p.n_duplicated + 1
		end
	end
	if p.corrupt > 0 then
		local hit = chance(r, st.cor_last, p.corrupt_no, p.corrupt_yes)
		st.cor_last = hit
		if hit then
			if corrupt(p, r, d) then
				p.n_corrupted = p.n_corrupted + 1
			else
				p.n_corrupt_skipped = p.n_corrupt_skipped + 1
			end
		end
	end
	return t
end

--- Apply pipe p to descriptor d.
-- Return: PASS (possibly held) or DROP.
local function apply(p, d)
	local dir = p.dir
	if dir ~= DIR_ANY then
		local hook = d.hook
		if dir == DIR_IN then
			if hook > HOOK_LOCAL_IN then return PASS end
		elseif hook < HOOK_LOCAL_OUT then
			return PASS
		end
	end
	local t0 = rel_time(d)
	local t = t0
	if band(d.set, SET_HOLD) ~= 0 then t = t0 + tonumber(d.hold_ns) end
	local st = p.state
	if not st then st = flow_state(p, d, t) end
	p.n_packets = p.n_packets + 1
	local m = p.m     -- divert.metrics slot of a named pipe, or false
	if m then m.packets = m.packets + 1; m.bytes = m.bytes + d.len end
	local t_in = t
	t = stage(p, st, d, t)
	if t < 0 then
		d.set = band(d.set, NOT_HOLD)
		d.hold_ns = 0
		p.n_dropped = p.n_dropped + 1
		if m then m.lost = m.lost + 1 end
		return DROP
	end
	if m then pipe_out(m, t - t_in, t + tonumber(base[0])) end
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

-- A struct ld_packet (or a pointer to one) is used as is; anything else is
-- a packet object (divert.packet) whose .d is the descriptor.
local ld_packet_t = ffi.typeof("struct ld_packet")
local istype = ffi.istype
local function descriptor(pkt)
	if istype(ld_packet_t, pkt) then return pkt end
	return pkt.d
end

---------------------------------------------------------------------------
-- Configuration
---------------------------------------------------------------------------

local M = {}

-- Configuration errors are raised without a position; shape.pipe adds the
-- caller's (the policy line that built the pipe).
local function bad(key, msg)
	error(("shape.pipe: %s: %s"):format(key, msg), 0)
end

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

-- cfg[key] through parse, or default when absent; a bad value raises an
-- error naming the option (prefix.key for a sub-table such as gemodel).
local function get(cfg, key, parse, default, prefix)
	local v = cfg[key]
	if v == nil then return default end
	local x, err = parse(v)
	if x == nil then bad(prefix and prefix .. "." .. key or key, err) end
	return x
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

local function next_seed()
	seed_count = seed_count + 1
	if default_seed then return rng.derive(default_seed, seed_count, 0) end
	return random_seed()
end

--- Set the seed that pipes created from now on without an explicit `seed`
-- derive theirs from (`luadivert replay --seed N` sets it through
-- LUADIVERT_SEED). nil goes back to random seeds.
function M.set_seed(n)
	if n ~= nil and type(n) ~= "number" then error("shape.set_seed: a number or nil", 2) end
	default_seed = n
	seed_count = 0
end

-- NAME_correlation: the probabilities of NAME after a "no" and after a
-- "yes" (see chance()).
local function correlated(cfg, name, prob)
	local key = name .. "_correlation"
	local rho = get(cfg, key, M.parse_prob, 0)
	if rho >= 1 then bad(key, "must be below 1") end
	return prob * (1 - rho), prob + rho * (1 - prob)
end

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
	p.flows, p.flist, p.nflows = {}, {}, 0
	p.sweep_at = 0
	local seed = p.seed_value
	if p.flow_mode == FLOW_NONE then
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

	p.delay_ns = get(cfg, "delay", M.parse_time, 0) * NS_PER_MS
	p.jitter_ns = get(cfg, "jitter", M.parse_time, 0) * NS_PER_MS
	local dist = cfg.distribution or "uniform"
	p.dist = DISTS[dist]
	if not p.dist then bad("distribution", ("%q is not uniform, normal, pareto or paretonormal"):format(tostring(dist))) end
	local rho = get(cfg, "correlation", M.parse_prob, 0)
	if rho >= 1 then bad("correlation", "must be below 1") end
	p.rho, p.rho_c = rho, (1 - rho * rho) ^ 0.5

	-- Loss: random (optionally correlated) or Gilbert-Elliott.
	p.loss = get(cfg, "loss", M.parse_prob, 0)
	p.loss_no, p.loss_yes = correlated(cfg, "loss", p.loss)
	p.ge = false
	if cfg.gemodel ~= nil then
		local g = cfg.gemodel
		if type(g) ~= "table" then bad("gemodel", "expects a table {p=, r=, h=, k=}") end
		if cfg.loss then bad("gemodel", "use either loss or gemodel, not both") end
		for k in pairs(g) do
			if k ~= "p" and k ~= "r" and k ~= "h" and k ~= "k" and k ~= "1-h" and k ~= "1-k" then
				bad("gemodel", ("unknown parameter %q (p, r, h, k, \"1-h\", \"1-k\")"):format(tostring(k)))
			end
		end
		if g.h ~= nil and g["1-h"] ~= nil then bad("gemodel", "give h or \"1-h\", not both") end
		if g.k ~= nil and g["1-k"] ~= nil then bad("gemodel", "give k or \"1-k\", not both") end
		local function prob(k, default) return get(g, k, M.parse_prob, default, "gemodel") end
		-- tc's defaults: r = 1 - p, 1-h = 1 (the bad state loses all),
		-- 1-k = 0 (the good state loses none).
		p.ge_p = prob("p", nil)
		if p.ge_p == nil then bad("gemodel", "p (good to bad transition probability) is required") end
		p.ge_r = prob("r", 1 - p.ge_p)
		p.ge_h = g["1-h"] ~= nil and 1 - prob("1-h") or prob("h", 0)
		p.ge_k = g["1-k"] ~= nil and 1 - prob("1-k") or prob("k", 1)
		p.ge = true
	end

	-- Rate, burst, overhead, limit.
	p.rate_bps = get(cfg, "rate", M.parse_rate, 0)
	p.ns_per_byte = p.rate_bps > 0 and BITS_PER_BYTE * NS_PER_S / p.rate_bps or 0
	p.overhead = get(cfg, "overhead", M.parse_size, 0)
	p.burst = get(cfg, "burst", M.parse_size, 0)
	if p.burst > 0 and p.rate_bps == 0 then bad("burst", "needs a rate") end
	p.burst_ns = p.burst * p.ns_per_byte
	p.mtu = get(cfg, "mtu", M.parse_size, DEFAULT_MTU)
	p.limit_pkts, p.limit_bytes = huge, huge
	if cfg.limit ~= nil then
		local l = cfg.limit
		if type(l) == "number" then
			if l < 1 or l ~= floor(l) then bad("limit", "a number of packets must be a positive integer") end
			p.limit_pkts = l
		elseif type(l) == "string" and l:lower():match("^%s*%d+%s*p") then
			p.limit_pkts = tonumber(l:match("%d+"))
			if p.limit_pkts < 1 then bad("limit", "must be at least 1 packet") end
		else
			local b, err = M.parse_size(l)
			if not b then bad("limit", err) end
			if b < 1 then bad("limit", "must be at least 1 byte") end
			p.limit_bytes = b
		end
	end
	p.has_limit = p.limit_pkts < huge or p.limit_bytes < huge

	-- Reorder: like netem, one packet out of `every` (default 1) with
	-- probability `reorder` (default 1 when `every` is given) skips the
	-- delay line and overtakes the packets still in it.
	p.reorder = get(cfg, "reorder", M.parse_prob, cfg.every and 1 or 0)
	p.reorder_gap = 1
	if cfg.every ~= nil then
		local e = cfg.every
		if type(e) ~= "number" or e < 1 or e ~= floor(e) then bad("every", "must be a positive integer") end
		p.reorder_gap = e
	end
	if p.reorder > 0 and p.delay_ns == 0 and p.jitter_ns == 0 then
		bad("reorder", "needs a delay: reordered packets overtake delayed ones")
	end

	-- fifo = false: every packet keeps its own sampled delay, so jitter
	-- reorders packets (netem's tfifo does this); default true: in order.
	if cfg.fifo ~= nil and type(cfg.fifo) ~= "boolean" then bad("fifo", "must be true or false") end
	p.fifo = cfg.fifo ~= false

	p.reorder_no, p.reorder_yes = correlated(cfg, "reorder", p.reorder)
	p.duplicate = get(cfg, "duplicate", M.parse_prob, 0)
	p.duplicate_no, p.duplicate_yes = correlated(cfg, "duplicate", p.duplicate)
	p.corrupt = get(cfg, "corrupt", M.parse_prob, 0)
	p.corrupt_no, p.corrupt_yes = correlated(cfg, "corrupt", p.corrupt)
	p.keep_checksums = cfg.keep_checksums == true
	if cfg.keep_checksums ~= nil and type(cfg.keep_checksums) ~= "boolean" then
		bad("keep_checksums", "must be true or false")
	end

	p.thr_frame, p.thr_chance, p.thr_drop = 0, 0, false
	if cfg.throttle ~= nil then
		local th = cfg.throttle
		if type(th) == "number" or type(th) == "string" then th = { frame = th } end
		if type(th) ~= "table" then bad("throttle", "expects {frame = ms, chance = p, drop = false}") end
		for k in pairs(th) do
			if k ~= "frame" and k ~= "chance" and k ~= "drop" then
				bad("throttle", ("unknown parameter %q (frame, chance, drop)"):format(tostring(k)))
			end
		end
		p.thr_frame = get(th, "frame", M.parse_time, 0, "throttle") * NS_PER_MS
		if p.thr_frame <= 0 then bad("throttle.frame", "must be > 0 ms") end
		p.thr_chance = get(th, "chance", M.parse_prob, 1, "throttle")
		p.thr_drop = th.drop == true
	end

	local dir = cfg.direction
	if dir == nil or dir == "any" or dir == "both" then p.dir = DIR_ANY
	elseif dir == "in" then p.dir = DIR_IN
	elseif dir == "out" then p.dir = DIR_OUT
	else bad("direction", ("%q is not \"in\", \"out\" or nil"):format(tostring(dir))) end

	local pf = cfg.per_flow
	if pf == nil or pf == false then p.flow_mode = FLOW_NONE
	elseif pf == true or pf == "5tuple" then p.flow_mode = FLOW_5TUPLE
	elseif pf == "src" then p.flow_mode = FLOW_SRC
	elseif pf == "dst" then p.flow_mode = FLOW_DST
	else bad("per_flow", ("%q is not true, \"5tuple\", \"src\" or \"dst\""):format(tostring(pf))) end
	local idle = cfg.idle == nil and DEFAULT_IDLE_S or cfg.idle
	if type(idle) ~= "number" or idle <= 0 then bad("idle", "must be a positive number of seconds") end
	p.idle_ns = idle * NS_PER_S
	local mf = cfg.max_flows == nil and DEFAULT_MAX_FLOWS or cfg.max_flows
	if type(mf) ~= "number" or mf < 1 then bad("max_flows", "must be a positive integer") end
	p.max_flows = mf

	if cfg.seed ~= nil then
		if type(cfg.seed) ~= "number" or cfg.seed ~= floor(cfg.seed) then bad("seed", "must be an integer") end
		p.seed_value = cfg.seed
	else
		p.seed_value = next_seed()
	end
	reset(p)
	return p
end

--- Build a pipe. See docs/shaping.md for every option; an error in the
-- configuration raises at once, naming the option and the caller's line.
function M.pipe(cfg)
	local ok, p = pcall(build, cfg)
	if not ok then error(p, 2) end
	return p
end

--- Apply the pipe: `return pipe(pkt)` in a handler. pkt is a packet object
-- (with .d, the descriptor) or a struct ld_packet pointer.
function Pipe.__call(p, pkt)
	return apply(p, descriptor(pkt))
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

--- Pipes applied in the order written; a packet dropped by one goes no further.
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

function Chain.__call(c, pkt)
	local d = descriptor(pkt)
	for i = 1, c.n do
		if apply(c[i], d) == DROP then return DROP end
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

--- Restart the time base (tests and replays of several captures).
function M.reset_clock()
	base_set = false
	base[0] = 0
end

M.PASS, M.DROP = PASS, DROP
M.is_pipe = function (x) return getmetatable(x) == Pipe or getmetatable(x) == Chain end

--- Self-test: a few exact decisions on synthetic descriptors (silent
-- unless it fails; tests/lua/shape_test.lua has the full checks).
function M.selftest()
	local d = ffi.new("struct ld_packet")
	local buf = ffi.new("uint8_t[1250]")
	buf[0], buf[2], buf[3], buf[9] = 0x45, 0x04, 0xe2, 17     -- IPv4, 1250 bytes, UDP
	d.data, d.len, d.cap, d.orig_len, d.hook = buf, 1250, 1250, 1250, HOOK_LOCAL_OUT
	local saved_set, saved_base = base_set, base[0]
	M.reset_clock()
	local function send(p, t_ns)
		d.tstamp_ns, d.set, d.hold_ns, d.dup = t_ns, 0, 0, 0
		return p(d), tonumber(d.hold_ns)
	end
	local delay = M.pipe{ delay = 25, seed = 1 }
	local v, h = send(delay, 5e9)
	assert(v == PASS and h == 25 * NS_PER_MS and band(d.set, SET_HOLD) ~= 0, "delay 25 ms")
	local link = M.pipe{ rate = "1mbit", seed = 1 }            -- 1250 bytes = 10 ms
	assert(select(2, send(link, 5e9)) == 10 * NS_PER_MS, "rate: first packet")
	assert(select(2, send(link, 5e9)) == 20 * NS_PER_MS, "rate: second queues behind")
	assert(send(M.pipe{ loss = 1, seed = 1 }, 5e9) == DROP, "loss 1")
	assert(M.parse_rate("100kbps") == 800e3 and M.parse_size("64kb") == 65536, "units")
	base_set, base[0] = saved_set, saved_base
	return true
end

-- Internals exposed for tests.
M._l4_locate, M._l4_layout, M._flow_key, M._kbuf = l4_locate, l4_layout, flow_key, kbuf
M._quantile = quantile
function M._collide(on) collide = on and true or false end
M._DIST = DISTS

return M

-- divert.shape.impair: what a pipe does to the packets that leave it
-- (internal to divert.shape): duplicate (the core injects the extra copies,
-- descriptor field `dup`) and corrupt (flip one random bit of the transport
-- payload, found through the packet views; with keep_checksums the
-- transport checksum is updated so the packet still looks intact).
local ffi = require "ffi"
local bit = require "bit"
require "divert.abi"
local V = require "divert.view"
local checksum = require "divert.checksum"
local options = require "divert.shape.options"
local chance = require("divert.shape.loss").chance

local get, bad, parse_prob, correlated = options.get, options.bad, options.parse_prob, options.correlated
local band, bor, bxor, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift
local C = ffi.C
local SET_MODIFIED = C.LD_SET_MODIFIED
local PKT_GSO, PKT_CSUM_NOTREADY, PKT_TRUNCATED =
	C.LD_PKT_GSO, C.LD_PKT_CSUM_NOTREADY, C.LD_PKT_TRUNCATED
local rd16, wr16, adjust = V.rd16, V.wr16, checksum.adjust

-- Where each transport's checksum field is (divert.checksum's table), as
-- an array: looked up by protocol without a branch per protocol.
local CSUM_AT = ffi.new("uint8_t[256]")
for proto, off in pairs(checksum.CSUM_OFF) do CSUM_AT[proto] = off end

local IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58

local M = {}

--- Read duplicate, corrupt, keep_checksums (and their correlations).
function M.configure(p, cfg)
	p.duplicate = get(cfg, "duplicate", parse_prob, 0)
	p.duplicate_no, p.duplicate_yes = correlated(cfg, "duplicate", p.duplicate)
	p.corrupt = get(cfg, "corrupt", parse_prob, 0)
	p.corrupt_no, p.corrupt_yes = correlated(cfg, "corrupt", p.corrupt)
	if cfg.keep_checksums ~= nil and type(cfg.keep_checksums) ~= "boolean" then
		bad("keep_checksums", "must be true or false")
	end
	p.keep_checksums = cfg.keep_checksums == true
end

--- The state these start with (fields of a pipe's or flow's state).
function M.init_state(st)
	st.dup_last = false   -- correlated duplicate / corrupt: last decision
	st.cor_last = false
end

--- The transport view whose checksum corrupt keeps right (TCP, UDP, ICMP
-- over IPv4, ICMPv6 over IPv6), false for other protocols and non-first
-- fragments; nil when the headers are broken.
local function transport(pk, ip)
	if ip.frag ~= 0 then return false end
	if ip.l4why ~= 0 then return nil end
	local pr, ver = ip.l4proto, ip.ipver
	local v
	if pr == IPPROTO_TCP then v = pk:tcp()
	elseif pr == IPPROTO_UDP then v = pk:udp()
	elseif pr == IPPROTO_ICMP and ver == 4 then v = pk:icmp()
	elseif pr == IPPROTO_ICMPV6 and ver == 6 then v = pk:icmpv6()
	else return false end
	return v
end

--- Flip one random bit of the transport payload of the packet (descriptor
-- d, packet object pk on it). Return: false when there is nothing to
-- corrupt (no payload, GSO or truncated, broken headers; with
-- keep_checksums, a checksum we cannot keep valid).
local function corrupt(p, r, d, pk)
	local flags = d.flags
	if band(flags, PKT_GSO + PKT_TRUNCATED) ~= 0 then return false end
	local ip = pk:ip()
	if not ip then return false end
	local v = transport(pk, ip)
	if v == nil then return false end
	local keep = p.keep_checksums
	if not v and keep then return false end
	-- the payload: after the transport header, or after the IP headers
	local plen
	if v then plen = v.len - v.hlen else plen = ip.l4len end
	if plen <= 0 then return false end
	local notready = band(flags, PKT_CSUM_NOTREADY) ~= 0
	-- No checksum at all: UDP over IPv4 with a zero checksum.
	local has_csum = v and not (v.proto == IPPROTO_UDP and ip.ipver == 4 and not notready
		and rd16(v.p, 6) == 0)
	if has_csum and notready and pk.csum_done == 0 then
		-- The kernel left the checksum for the NIC; once the bytes change it
		-- marks the packet CHECKSUM_NONE and nobody finishes it: do it here
		-- (and tell the packet object, so its views do not do it again).
		pk.csum_done = 1
		checksum.fill_l4(ip.p, ip.ipver, v.p, v.len, v.proto, ip.dstoff)
	end
	d.set = bor(d.set, SET_MODIFIED)
	-- (few values live from here on, pointers re-read from the views: the
	-- side traces of the random branches below must stay simple enough to
	-- compile)
	local i = r:below(plen)
	local k = r:below(8)               -- the bit
	if not v then
		local q = ip.p + ip.l4off
		q[i] = bxor(q[i], lshift(1, k))
		return true
	end
	local at = v.hlen + i              -- from the transport header
	local p8 = v.p
	local old = p8[at]
	p8[at] = bxor(old, lshift(1, k))
	if keep and has_csum then
		-- The 16-bit word that changed, aligned to the transport header,
		-- went down or up by the bit's value (in its high byte when at is
		-- even): an incremental update (RFC 1624). Branch-free: each
		-- branch here, at the end of a long trace, would be a side trace
		-- inheriting more values than LuaJIT has registers for.
		local delta = lshift(1, k + lshift(1 - band(at, 1), 3))
		local was = band(rshift(old, k), 1) * delta
		-- 0 goes out as 0xffff (the same in ones' complement; for UDP 0
		-- would mean "no checksum"): (c - 1) % 0xffff + 1, no branch.
		local at_csum = CSUM_AT[v.proto]
		local c = (adjust(rd16(p8, at_csum), was, delta - was) - 1) % 0xffff + 1
		wr16(p8, at_csum, c)
	end
	return true
end

--- Duplicate and corrupt the packet that leaves the pipe (counted in p).
function M.apply(p, st, r, d, pk)
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
			if corrupt(p, r, d, pk) then
				p.n_corrupted = p.n_corrupted + 1
			else
				p.n_corrupt_skipped = p.n_corrupt_skipped + 1
			end
		end
	end
end

function M.selftest()
	local packet = require "divert.packet"
	local rng = require "divert.rng"
	-- UDP 10.0.0.1:1000 -> 10.0.0.2:53, 4 bytes of data, checksum right (not 0: "none")
	local s = "\69\0\0\32\0\0\64\0\64\17\0\0\10\0\0\1\10\0\0\2\3\232\0\53\0\12\1\1abcd"
	local pk = packet.from_string(s)
	pk:fix_checksums()
	local p = { keep_checksums = true }
	assert(corrupt(p, rng.new(1), pk.d, pk) and pk:checksums_ok(), "keep_checksums")
	assert(ffi.string(pk:data(), pk:len()):sub(29) ~= "abcd", "one payload bit flipped")
	p.keep_checksums = false
	assert(corrupt(p, rng.new(2), pk.d, pk) and pk:checksums_ok() == false, "checksum now wrong")
	assert(not pcall(M.configure, {}, { keep_checksums = 1 }))
end

return M

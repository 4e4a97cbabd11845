-- divert.checksum: the Internet checksum (RFC 1071), full and incremental
-- (RFC 1624), with the IPv4 and IPv6 pseudo-headers.
--
-- Sums are Lua numbers in "network order": the value you would get by adding
-- the big-endian 16-bit words of the bytes. checksum.partial() returns such
-- a sum folded to 16 bits; checksum.finish() turns a sum into the value that
-- goes into a checksum field (host-order number, e.g. 0xb1e6).
--
--   local cs = require "divert.checksum"
--   local v = cs.finish(cs.partial(ptr, len))          -- plain checksum
--   cs.fill_l4(ip, 4, tcp_ptr, tcp_len, 6)              -- write a TCP checksum
--   hc = cs.update16(hc, old_word, new_word)            -- RFC 1624 eqn. 3
local ffi = require "ffi"
local bit = require "bit"

local band, bor, rshift, lshift, bnot = bit.band, bit.bor, bit.rshift, bit.lshift, bit.bnot
local cast = ffi.cast
local u32p = ffi.typeof("uint32_t *")
local u16p = ffi.typeof("uint16_t *")
local u64 = ffi.typeof("uint64_t")
local LE = ffi.abi("le")

local M = {}

-- Offsets of the checksum field in each transport header we know.
local CSUM_OFF = { [6] = 16, [17] = 6, [1] = 2, [58] = 2 }
M.CSUM_OFF = CSUM_OFF

--- Fold a (non-negative) ones-complement sum to 16 bits.
local function fold(s)
	-- two rounds suffice for any sum below 2^32; sums of up to 64 KiB of
	-- data plus pseudo-headers stay far below that after partial()
	s = s % 65536 + (s - s % 65536) / 65536
	s = s % 65536 + (s - s % 65536) / 65536
	return s
end
M.fold = fold

--- Sum of ptr[0..len) as native-order 32-bit words, unfolded (uint64 maths:
-- one add per 4 bytes, two accumulators so the adds can overlap).
local function sum_native(p, len)
	local q = cast(u32p, p)
	local a, b = u64(0), u64(0)
	local nw = rshift(len, 3) * 2  -- 32-bit words in whole 8-byte blocks
	for i = 0, nw - 1, 2 do
		a = a + q[i]
		b = b + q[i + 1]
	end
	local s = tonumber(a + b)
	local i = nw * 4
	if len - i >= 4 then s = s + q[nw]; i = i + 4 end
	if len - i >= 2 then s = s + cast(u16p, p + i)[0]; i = i + 2 end
	if i < len then
		-- an odd trailing byte is the high half of a zero-padded word
		s = s + (LE and p[i] or p[i] * 256)
	end
	return s
end

--- checksum.partial(ptr, len [, acc]) -> 16-bit sum of the bytes (+ acc).
local function partial(p, len, acc)
	local s = fold(fold(sum_native(p, len)))
	if LE then s = rshift(bit.bswap(s), 16) end  -- native word order -> network order
	if acc then s = fold(s + acc) end
	return s
end
M.partial = partial

--- checksum.finish(sum) -> the value to store in a checksum field.
local function finish(s)
	return 65535 - fold(s)
end
M.finish = finish

--- Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
-- update16 for one 16-bit word; adjust() for any number of words given as
-- their folded sums (old_sum = sum of the old words, new_sum of the new).
local function adjust(hc, old_sum, new_sum)
	return 65535 - fold((65535 - hc) + (65535 - old_sum) + new_sum)
end
M.adjust = adjust

function M.update16(hc, old, new)
	return adjust(hc, old, new)
end

--- update32(hc, old, new): a 32-bit field (host numbers 0..2^32-1) changed.
function M.update32(hc, old, new)
	local o = fold(old % 65536 + (old - old % 65536) / 65536)
	local n = fold(new % 65536 + (new - new % 65536) / 65536)
	return adjust(hc, o, n)
end

local function rd16(p, o) return p[o] * 256 + p[o + 1] end
local function wr16(p, o, v) p[o] = rshift(v, 8); p[o + 1] = band(v, 255) end

--- checksum.ipv4_header(ip) -> the header checksum the IPv4 header at ip
-- should carry (its current checksum field is left out of the sum).
function M.ipv4_header(ip)
	local hlen = band(ip[0], 15) * 4
	local s = partial(ip, hlen)
	return finish(s + (65535 - rd16(ip, 10)))
end

--- Pseudo-header sums. ip points at the IP header; l4len is the length of
-- the transport segment (header + data). dstoff: where the destination
-- address is, from ip; for IPv6 with a routing header that is the final
-- destination inside the routing header (RFC 8200 section 8.1), which
-- divert.ipv6 finds (view.dstoff). Default: the header's own field.
local function pseudo4(ip, proto, l4len)
	return fold(partial(ip + 12, 8) + proto + l4len % 65536 + (l4len - l4len % 65536) / 65536)
end
local function pseudo6(ip, proto, l4len, dstoff)
	local s = partial(ip + 8, 16) + partial(ip + (dstoff or 24), 16)
	return fold(s + proto + l4len % 65536 + (l4len - l4len % 65536) / 65536)
end
M.pseudo4, M.pseudo6 = pseudo4, pseudo6

--- checksum.l4(ip, ipver, l4, l4len, proto [, dstoff]) -> the checksum the transport
-- header at l4 should carry, or nil for a protocol without one we know.
-- The current value of the field is left out of the sum, so nothing is
-- written; ICMP over IPv4 has no pseudo-header.
local function l4sum(ip, ipver, l4, l4len, proto, dstoff)
	local off = CSUM_OFF[proto]
	if not off or l4len < off + 2 then return nil end
	local s = partial(l4, l4len)
	s = s + (65535 - rd16(l4, off))          -- take the stored checksum out
	if proto ~= 1 then
		s = s + (ipver == 4 and pseudo4(ip, proto, l4len) or pseudo6(ip, proto, l4len, dstoff))
	end
	local c = finish(s)
	if proto == 17 and c == 0 then c = 65535 end  -- 0 means "no checksum" for UDP
	return c
end
M.l4 = l4sum

--- checksum.fill_l4(ip, ipver, l4, l4len, proto [, dstoff]) -> true after writing the
-- complete transport checksum, or nil when the protocol has none we know.
function M.fill_l4(ip, ipver, l4, l4len, proto, dstoff)
	local c = l4sum(ip, ipver, l4, l4len, proto, dstoff)
	if not c then return nil end
	wr16(l4, CSUM_OFF[proto], c)
	return true
end

--- checksum.reference(ptr, len) -> checksum by the book, one 16-bit word at a
-- time. Slow; for tests.
function M.reference(p, len)
	local s = 0
	for i = 0, len - 2, 2 do s = s + p[i] * 256 + p[i + 1] end
	if len % 2 == 1 then s = s + p[len - 1] * 256 end
	while s > 65535 do s = band(s, 65535) + rshift(s, 16) end
	return 65535 - s
end

function M.selftest()
	-- RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2
	local b = ffi.new("uint8_t[8]", { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 })
	assert(partial(b, 8) == 0xddf2, "rfc1071 example")
	assert(finish(partial(b, 8)) == 0x220d)
	-- a real IPv4 header (checksum 0xb1e6)
	local h = ffi.new("uint8_t[20]", { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 })
	assert(M.ipv4_header(h) == 0xb861, "ipv4 header checksum")
	-- random buffers, every length and alignment, against the reference
	local buf = ffi.new("uint8_t[300]")
	local seed = 12345
	for i = 0, 299 do seed = (seed * 1103515245 + 12345) % 2147483648; buf[i] = seed % 256 end
	for off = 0, 3 do
		for len = 0, 290 do
			local want = M.reference(buf + off, len)
			local got = finish(partial(buf + off, len))
			-- 0x0000 and 0xffff are the same number in ones' complement
			assert(got == want or (got + want == 65535 and (got == 0 or want == 0)),
			       "partial mismatch at len " .. len)
		end
	end
	-- incremental update agrees with a full recompute
	h[8] = 0x3f; wr16(h, 10, M.update16(0xb861, 0x4011, 0x3f11))
	assert(M.ipv4_header(h) == rd16(h, 10), "update16")
	assert(M.update32(0x1234, 0xc0a80001, 0xc0a80001) == 0x1234)
end

return M

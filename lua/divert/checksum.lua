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

local band, rshift, tobit = bit.band, bit.rshift, bit.tobit
local cast = ffi.cast
local i32p = ffi.typeof("int32_t *")
local u8p = ffi.typeof("uint8_t *")
local u16p = ffi.typeof("uint16_t *")
local intptr_t = ffi.typeof("intptr_t")
local LE = ffi.abi("le")

local M = {}

-- Offsets of the checksum field in each transport header we know.
local CSUM_OFF = { [6] = 16, [17] = 6, [1] = 2, [58] = 2 }
M.CSUM_OFF = CSUM_OFF

--- Fold a (non-negative) ones-complement sum to 16 bits. Sums below 2^31
-- (all but the big ones in sum_at) fold with integer bit operations.
local function fold(s)
	if s < 2147483648 then
		s = band(s, 0xffff) + rshift(s, 16)
		return band(s, 0xffff) + rshift(s, 16)
	end
	-- two rounds suffice for any sum below 2^32; sums of up to 64 KiB of
	-- data plus pseudo-headers stay far below that after partial()
	s = s % 65536 + (s - s % 65536) / 65536
	s = s % 65536 + (s - s % 65536) / 65536
	return s
end
M.fold = fold

-- Allocation-free loops under the JIT. When a trace enters or leaves a
-- loop, every cdata value it created that is still held in a Lua slot -- of
-- the looping function or of any caller -- gets boxed, i.e. allocated. So
-- the summing loop takes the address as a plain number, its accumulators are
-- int32 (bit.tobit(a + b) compiles to an integer add), and the functions
-- around it drop their pointer arguments (p = nil) before they loop.

local function addr(p) return (tonumber(cast(intptr_t, p))) end

-- Sum of the len bytes at address a as native-order 16-bit words, folded,
-- in network order. Four accumulators let the adds overlap; each takes two
-- 16-bit values per 16 bytes, so CHUNK bytes keep them far below 2^31.
local CHUNK = 65536
local function sum_at(a, len)
	local s = 0
	while len > CHUNK do
		s = s + sum_at(a, CHUNK)
		a = a + CHUNK; len = len - CHUNK
	end
	local w1, w2, w3, w4 = 0, 0, 0, 0
	-- Short buffers (headers, SYNs, ACKs) take no loop at all: a loop that
	-- runs once or twice never forms a trace of its own and drags the code
	-- around it back into the interpreter. The tail below takes < 64 bytes.
	local nw = len >= 64 and rshift(len, 4) * 4 or 0
	for i = 0, nw - 1, 4 do
		local q = cast(i32p, a)
		local w, x, y, z = q[i], q[i + 1], q[i + 2], q[i + 3]
		w1 = tobit(w1 + band(w, 0xffff) + rshift(w, 16))
		w2 = tobit(w2 + band(x, 0xffff) + rshift(x, 16))
		w3 = tobit(w3 + band(y, 0xffff) + rshift(y, 16))
		w4 = tobit(w4 + band(z, 0xffff) + rshift(z, 16))
	end
	local n = w1 + w2 + w3 + w4
	-- the last 0..63 bytes, without another loop
	local p = cast(u8p, a)
	local i = nw * 4
	local r = len - i
	if r >= 32 then
		local q = cast(i32p, p + i)
		local w, x, y, z = q[0], q[1], q[2], q[3]
		n = n + band(w, 0xffff) + rshift(w, 16) + band(x, 0xffff) + rshift(x, 16)
			+ band(y, 0xffff) + rshift(y, 16) + band(z, 0xffff) + rshift(z, 16)
		w, x, y, z = q[4], q[5], q[6], q[7]
		n = n + band(w, 0xffff) + rshift(w, 16) + band(x, 0xffff) + rshift(x, 16)
			+ band(y, 0xffff) + rshift(y, 16) + band(z, 0xffff) + rshift(z, 16)
		i = i + 32; r = r - 32
	end
	if r >= 16 then
		local q = cast(i32p, p + i)
		local w, x, y, z = q[0], q[1], q[2], q[3]
		n = n + band(w, 0xffff) + rshift(w, 16) + band(x, 0xffff) + rshift(x, 16)
			+ band(y, 0xffff) + rshift(y, 16) + band(z, 0xffff) + rshift(z, 16)
		i = i + 16; r = r - 16
	end
	if r >= 8 then
		local q = cast(i32p, p + i)
		local w, x = q[0], q[1]
		n = n + band(w, 0xffff) + rshift(w, 16) + band(x, 0xffff) + rshift(x, 16)
		i = i + 8; r = r - 8
	end
	if r >= 4 then
		local w = cast(i32p, p + i)[0]
		n = n + band(w, 0xffff) + rshift(w, 16)
		i = i + 4; r = r - 4
	end
	if r >= 2 then n = n + cast(u16p, p + i)[0]; i = i + 2; r = r - 2 end
	if r == 1 then
		-- an odd trailing byte is the high half of a zero-padded word
		n = n + (LE and p[i] or p[i] * 256)
	end
	n = fold(fold(n))
	if LE then n = rshift(bit.bswap(n), 16) end  -- native word order -> network order
	return (fold(s + n))
end

--- checksum.partial(ptr, len [, acc]) -> 16-bit sum of the bytes (+ acc).
local function partial(p, len, acc)
	local a = addr(p)
	-- see above: nothing to box
	p = nil  -- luacheck: ignore 311
	local s = sum_at(a, len)
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
	return (adjust(hc, old, new))
end

--- update32(hc, old, new): a 32-bit field (host numbers 0..2^32-1) changed.
function M.update32(hc, old, new)
	local o = fold(old % 65536 + (old - old % 65536) / 65536)
	local n = fold(new % 65536 + (new - new % 65536) / 65536)
	return (adjust(hc, o, n))
end

local function rd16(p, o) return p[o] * 256 + p[o + 1] end
local function wr16(p, o, v) p[o] = rshift(v, 8); p[o + 1] = band(v, 255) end

-- Straight-line sums of 8 and 16 bytes (addresses): no loop, no trace exit.
local function sum8(p)
	return p[0] * 256 + p[1] + p[2] * 256 + p[3] + p[4] * 256 + p[5] + p[6] * 256 + p[7]
end
local function addr16(p) return sum8(p) + sum8(p + 8) end

--- checksum.ipv4_header(ip) -> the header checksum the IPv4 header at ip
-- should carry (its current checksum field is left out of the sum).
function M.ipv4_header(ip)
	local hlen = band(ip[0], 15) * 4
	if hlen == 20 then
		-- the common case without a loop (the checksum word is left out)
		return (finish(sum8(ip) + ip[8] * 256 + ip[9] + sum8(ip + 12)))
	end
	local s = 65535 - rd16(ip, 10)
	local a = addr(ip)
	ip = nil  -- luacheck: ignore 311
	return (finish(s + sum_at(a, hlen)))
end

--- Pseudo-header sums. ip points at the IP header; l4len is the length of
-- the transport segment (header + data). dstoff: where the destination
-- address is, from ip; for IPv6 with a routing header that is the final
-- destination inside the routing header (RFC 8200 section 8.1), which
-- divert.ipv6 finds (view.dstoff). Default: the header's own field.
local function pseudo4(ip, proto, l4len)
	return (fold(sum8(ip + 12) + proto + l4len % 65536 + (l4len - l4len % 65536) / 65536))
end
local function pseudo6(ip, proto, l4len, dstoff)
	local s = addr16(ip + 8) + addr16(ip + (dstoff or 24))
	return (fold(s + proto + l4len % 65536 + (l4len - l4len % 65536) / 65536))
end
M.pseudo4, M.pseudo6 = pseudo4, pseudo6

-- The pseudo-header and the stored checksum (taken out of the sum), read
-- before any loop runs; nil for a protocol without a checksum we know.
local function l4_head(ip, ipver, l4, l4len, proto, dstoff)
	local off = CSUM_OFF[proto]
	if not off or l4len < off + 2 then return nil end
	local s = 65535 - rd16(l4, off)
	if proto ~= 1 then
		s = s + (ipver == 4 and pseudo4(ip, proto, l4len) or pseudo6(ip, proto, l4len, dstoff))
	end
	return s
end

local function l4_finish(s, a, l4len, proto)
	local c = finish(s + sum_at(a, l4len))
	if proto == 17 and c == 0 then c = 65535 end  -- 0 means "no checksum" for UDP
	return c
end

--- checksum.l4(ip, ipver, l4, l4len, proto [, dstoff]) -> the checksum the
-- transport header at l4 should carry, or nil for a protocol without one
-- we know. The current value of the field is left out of the sum, so
-- nothing is written; ICMP over IPv4 has no pseudo-header.
-- UDP: the checksum covers the datagram as its length field gives it
-- (RFC 768; the kernel trims what follows), when that is shorter than the
-- segment in the buffer. Same for IPv4 and IPv6.
local function udp_len(l4, l4len, proto)
	if proto ~= 17 or l4len < 8 then return l4len end
	local ulen = rd16(l4, 4)
	if ulen >= 8 and ulen < l4len then return ulen end
	return l4len
end

function M.l4(ip, ipver, l4, l4len, proto, dstoff)
	l4len = udp_len(l4, l4len, proto)
	local s = l4_head(ip, ipver, l4, l4len, proto, dstoff)
	if not s then return nil end
	local a = addr(l4)
	ip = nil; l4 = nil  -- luacheck: ignore 311
	return (l4_finish(s, a, l4len, proto))
end

--- checksum.fill_l4(ip, ipver, l4, l4len, proto [, dstoff]) -> true after
-- writing the complete transport checksum, or nil when the protocol has
-- none we know.
function M.fill_l4(ip, ipver, l4, l4len, proto, dstoff)
	local a = addr(l4)
	local c = M.l4(ip, ipver, l4, l4len, proto, dstoff)
	if not c then return nil end
	wr16(cast(u8p, a), CSUM_OFF[proto], c)
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

-- divert.payload: look into payload bytes without making Lua strings.
--
--   local payload = require "divert.payload"
--   return function (pkt)
--     local p, n = pkt:payload()
--     if p and payload.starts_with(p, n, "GET ") and payload.find(p, n, "/admin") then
--       return divert.DROP
--     end
--     return divert.PASS
--   end
--
-- Needles are ordinary Lua strings: made once (constants in the policy),
-- handed to libc as pointers, never copied. Matching a payload therefore
-- allocates nothing; only payload.string() (for logs) makes a string.
local ffi = require "ffi"
local C = ffi.C

ffi.cdef [[
void *memmem(const void *hay, size_t hlen, const void *needle, size_t nlen);
int memcmp(const void *a, const void *b, size_t n);
]]

local u8p = ffi.typeof("uint8_t *")
local M = {}

--- payload.find(ptr, len, needle [, init]) -> 0-based offset of the first
-- occurrence of needle at or after init (default 0), or nil
function M.find(p, len, needle, init)
	init = init or 0
	local nl = #needle
	if init < 0 or init + nl > len then return nil end
	local r = C.memmem(p + init, len - init, needle, nl)
	if r == nil then return nil end
	return (tonumber(ffi.cast(u8p, r) - ffi.cast(u8p, p)))
end

--- payload.at(ptr, len, off, s) -> true when s is found exactly at off
function M.at(p, len, off, s)
	local nl = #s
	if off < 0 or off + nl > len then return false end
	return C.memcmp(p + off, s, nl) == 0
end

--- payload.starts_with(ptr, len, s) / payload.equals(ptr, len, s)
function M.starts_with(p, len, s) return (M.at(p, len, 0, s)) end
function M.equals(p, len, s) return len == #s and C.memcmp(p, s, len) == 0 end

--- payload.count(ptr, len, needle) -> non-overlapping occurrences
function M.count(p, len, needle)
	local n, at = 0, 0
	local nl = #needle
	if nl == 0 then return 0 end
	while true do
		local o = M.find(p, len, needle, at)
		if not o then return n end
		n = n + 1; at = o + nl
	end
end

--- payload.write(ptr, len, off, s) -> true, or nil when s does not fit.
-- Writes through a raw pointer: the caller marks the packet modified and
-- fixes checksums (or use payload.replace).
function M.write(p, len, off, s)
	local nl = #s
	if off < 0 or off + nl > len then return nil, "does not fit" end
	ffi.copy(p + off, s, nl)
	return true
end

--- payload.replace(pkt, old, new) -> number of replacements. Same-length
-- replacement in place, then fixes the checksums (and marks the packet
-- modified) when anything changed. For a different length use
-- pkt:set_payload().
function M.replace(pkt, old, new)
	if #old ~= #new then error("payload.replace: old and new must have the same length", 2) end
	if #old == 0 then return 0 end
	local p, len = pkt:payload()
	if not p then return 0 end
	local n, at = 0, 0
	while true do
		local o = M.find(p, len, old, at)
		if not o then break end
		ffi.copy(p + o, new, #new)
		n = n + 1; at = o + #new
	end
	if n > 0 then pkt:fix_checksums() end
	return n
end

--- payload.string(ptr, len [, max]) -> a Lua string of (at most max) bytes
function M.string(p, len, max)
	if max and len > max then len = max end
	return ffi.string(p, len)
end

function M.selftest()
	local s = "GET /admin HTTP/1.1\r\n"
	local b = ffi.new("uint8_t[?]", #s); ffi.copy(b, s, #s)
	assert(M.find(b, #s, "/admin") == 4 and M.find(b, #s, "HTTP", 5) == 11 and M.find(b, #s, "POST") == nil)
	assert(M.find(b, #s, "GET", 1) == nil and M.find(b, 3, "GET ") == nil)
	assert(M.starts_with(b, #s, "GET ") and not M.starts_with(b, 2, "GET") and M.equals(b, 3, "GET"))
	assert(M.at(b, #s, 4, "/admin") and not M.at(b, #s, 17, "1.1\r\n") and M.count(b, #s, "T") == 3)
	assert(M.write(b, #s, 4, "/ADMIN") and M.string(b, #s, 10) == "GET /ADMIN")
	assert(M.write(b, #s, #s - 1, "xx") == nil)
end

return M

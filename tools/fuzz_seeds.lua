-- tools/fuzz_seeds.lua OUTDIR PCAPDIR...: seed corpora for the fuzz targets
-- (fuzz/*.c) from real captures: OUTDIR/views holds IP packets,
-- OUTDIR/nfq those packets wrapped in NFQNL_MSG_PACKET netlink messages as
-- the kernel sends them, OUTDIR/replay the small capture files themselves.
package.path = "./tests/lua/?.lua;" .. package.path
local pf = require "pcapfile"
local out = assert(arg[1], "usage: fuzz_seeds.lua OUTDIR PCAPDIR...")
for _, d in ipairs { "views", "nfq", "replay" } do os.execute("mkdir -p " .. out .. "/" .. d) end

local function u16be(v) return string.char(math.floor(v / 256) % 256, v % 256) end
local function u32be(v) return u16be(math.floor(v / 65536) % 65536) .. u16be(v % 65536) end
local function u16le(v) return string.char(v % 256, math.floor(v / 256) % 256) end
local function u32le(v) return u16le(v % 65536) .. u16le(math.floor(v / 65536) % 65536) end
local function attr(t, v)   -- netlink attribute: len, type (host order = LE here), padded
	return u16le(4 + #v) .. u16le(t) .. v .. string.rep("\0", (4 - #v % 4) % 4)
end
local function nlmsg(ip, id)
	local hw = ip:byte(1) and math.floor(ip:byte(1) / 16) == 6 and 0x86dd or 0x0800
	local body = string.char(2, 0) .. u16be(0) ..                              -- nfgenmsg
		attr(1, u32be(id) .. u16be(hw) .. string.char(3)) ..                  -- PACKET_HDR
		attr(3, u32be(42)) .. attr(5, u32be(2)) .. attr(16, u32be(1000)) ..  -- MARK, INDEV, UID
		attr(14, u32be(id % 8)) ..                                             -- SKB_INFO
		attr(11, attr(8, u32be(7))) ..                                         -- CT { MARK }
		attr(10, ip)                                                           -- PAYLOAD
	return u32le(16 + #body) .. u16le(0x0300) .. u16le(0) .. u32le(id) .. u32le(0) .. body
end
local function write(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end

local n = 0
for i = 2, #arg do
	for name in io.popen("ls " .. arg[i]):lines() do
		local path = arg[i] .. "/" .. name
		local f = io.open(path, "rb")
		local size = f and f:seek("end") or 0
		if f then f:close() end
		if size > 0 and size < 65536 and (name:match("%.pcap$") or name:match("%.pcapng$")) then
			os.execute(string.format("cp '%s' '%s/replay/'", path, out))
		end
		if name:match("%.pcap$") then
			local k = 0
			for rec in pf.records(path) do
				k = k + 1
				if k > 20 or #rec.ip > 65535 then break end
				n = n + 1
				write(string.format("%s/views/%s-%d", out, name, k), rec.ip)
				write(string.format("%s/nfq/%s-%d", out, name, k), nlmsg(rec.ip, n))
			end
		end
	end
end
print(string.format("fuzz seeds: %d packets into %s", n, out))

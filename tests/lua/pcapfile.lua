-- tests/lua/pcapfile.lua: read the IP packets of a classic pcap file (test helper).
--
--   for rec in pcapfile.records("../shared/pcaps/dns_udp.pcap") do
--     rec.ip   -- Lua string: the bytes from the IP header on (as NFQUEUE gives them)
--     rec.orig -- original length on the wire of the whole frame
--   end
--
-- Knows the link types of the captures in ../shared/pcaps: Ethernet (with
-- VLAN / QinQ tags), raw IP, Linux cooked (SLL), BSD loopback, PPP. Frames
-- that carry no IP are skipped. pcapng files give no records.
local M = {}

M.DIR = os.getenv("LD_PCAP_DIR") or "../shared/pcaps"

local function u16be(s, i) return s:byte(i) * 256 + s:byte(i + 1) end

-- Offset (1-based) of the IP header in a frame, or nil.
local function ip_offset(link, f)
	if link == 101 or link == 228 or link == 229 or link == 12 or link == 14 then return 1 end
	if link == 1 then                               -- Ethernet
		local off = 13
		if #f < off + 1 then return nil end
		local et = u16be(f, off)
		while et == 0x8100 or et == 0x88a8 or et == 0x9100 do
			off = off + 4
			if #f < off + 1 then return nil end
			et = u16be(f, off)
		end
		if et == 0x0800 or et == 0x86dd then return off + 2 end
		return nil
	end
	if link == 113 then                             -- Linux cooked v1
		if #f < 16 then return nil end
		local et = u16be(f, 15)
		if et == 0x0800 or et == 0x86dd then return 17 end
		return nil
	end
	if link == 0 then return 5 end                  -- BSD loopback: 4-byte family
	if link == 9 then                               -- PPP
		local off = 1
		if f:byte(1) == 0xff and f:byte(2) == 0x03 then off = 3 end
		if #f < off + 1 then return nil end
		local pr = u16be(f, off)
		if pr == 0x0021 or pr == 0x0057 then return off + 2 end
		return nil
	end
	return nil
end

--- pcapfile.records(path) -> iterator over { ip = string, orig = number, n = index }
function M.records(path)
	local fh = assert(io.open(path, "rb"))
	local data = fh:read("*a")
	fh:close()
	local magic = data:sub(1, 4)
	local le
	if magic == "\xd4\xc3\xb2\xa1" or magic == "\x4d\x3c\xb2\xa1" then le = true
	elseif magic == "\xa1\xb2\xc3\xd4" or magic == "\xa1\xb2\x3c\x4d" then le = false
	else return function () return nil end end      -- pcapng or unknown
	local function u32(i)
		local a, b, c, d = data:byte(i, i + 3)
		if le then return ((d * 256 + c) * 256 + b) * 256 + a end
		return ((a * 256 + b) * 256 + c) * 256 + d
	end
	local link = u32(21) % 65536
	local pos, n = 25, 0
	return function ()
		while pos + 16 <= #data do
			local incl, orig = u32(pos + 8), u32(pos + 12)
			local frame = data:sub(pos + 16, pos + 15 + incl)
			pos = pos + 16 + incl
			n = n + 1
			local off = ip_offset(link, frame)
			if off and off <= #frame then
				return { ip = frame:sub(off), orig = orig - (off - 1), n = n, link = link }
			end
		end
		return nil
	end
end

--- pcapfile.list() -> sorted names of the .pcap files in DIR (empty if none)
function M.list()
	local names = {}
	local p = io.popen('ls "' .. M.DIR .. '" 2>/dev/null')
	if p then
		for l in p:lines() do if l:match("%.pcap$") then names[#names + 1] = l end end
		p:close()
	end
	table.sort(names)
	return names
end

--- pcapfile.hex(s) -> s as lowercase hex; pcapfile.unhex(h) -> bytes
function M.hex(s) return (s:gsub(".", function (c) return string.format("%02x", c:byte()) end)) end
function M.unhex(h) return (h:gsub("%s", ""):gsub("..", function (x) return string.char(tonumber(x, 16)) end)) end

return M

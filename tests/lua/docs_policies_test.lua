-- The policies the documentation shows (issue 14, item 25): every ```lua
-- block of README.md and docs/ that returns a handler is loaded and run on
-- an IPv4/UDP and an IPv6/TCP packet. A block that uses a global it never
-- defined (divert without `local divert = require "divert"`) passes
-- `luadivert check` and then fails on every packet: here it fails the test.
--   luajit tests/lua/docs_policies_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local packet = require "divert.packet"

local UDP4 = T.unhex("45000020000040004011 0000 c6120001c6120002 303900350000c0de 61626364")
local TCP6 = T.unhex("6000000000140640", "fd000198001800000000000000000001",
	"fd000198001800000000000000000002", "30390050000000010000000050021000 00000000")

-- Globals a block may use without defining them.
local ALLOWED = {}
for k in pairs(_G) do ALLOWED[k] = true end

local function blocks(path)
	local f = assert(io.open(path)); local s = f:read("*a"); f:close()
	local out = {}
	for code in s:gmatch("```lua\n(.-)```") do out[#out + 1] = code end
	return out
end

local files = { "README.md" }
for name in io.popen("ls docs/*.md docs/api/*.md"):lines() do files[#files + 1] = name end

local checked = 0
for _, path in ipairs(files) do
	for i, code in ipairs(blocks(path)) do
		if code:match("\nreturn function") or code:match("^return function") then
			T.check(path .. " block " .. i .. " runs without undefined globals", function ()
				local env = setmetatable({}, { __index = function (_, k)
					if ALLOWED[k] then return _G[k] end
					error("the policy uses the undefined global '" .. tostring(k) .. "'", 2)
				end })
				local chunk = assert(loadstring(code, "=" .. path .. ":" .. i))
				setfenv(chunk, env)
				local ok, h = pcall(chunk)
				if not ok then
					-- a block that needs files or options we do not have is
					-- not what this test is about; undefined globals are
					assert(not tostring(h):find("undefined global", 1, true), h)
					return
				end
				if type(h) == "table" then h = h.on_packet end
				if type(h) ~= "function" then return end
				for _, bytes in ipairs { UDP4, TCP6 } do
					local rok, err = pcall(h, packet.from_string(bytes))
					assert(rok or not tostring(err):find("undefined global", 1, true), err)
				end
				checked = checked + 1
			end)
		end
	end
end
T.check("some documented policies were run", function () assert(checked >= 5, checked) end)
T.done()

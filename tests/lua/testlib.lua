-- tests/lua/testlib.lua: the tiny harness of the Lua library tests.
--
--   local T = require "testlib"
--   T.check("ipv4 ttl", function () assert(...) end)
--   T.done()              -- exits 1 if any check failed
--
-- One line per check: "ok   name" or "FAIL name: message".
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path

local T = { failed = 0, passed = 0 }

function T.check(name, fn)
	local ok, err = xpcall(fn, debug.traceback)
	if ok then
		T.passed = T.passed + 1
		print("ok   " .. name)
	else
		T.failed = T.failed + 1
		print("FAIL " .. name .. ": " .. tostring(err))
	end
end

--- T.eq(got, want, what): assert with both values in the message
function T.eq(got, want, what)
	if got ~= want then
		error(string.format("%s: got %s, want %s", what or "value", tostring(got), tostring(want)), 2)
	end
end

function T.done()
	print(string.format("%d passed, %d failed", T.passed, T.failed))
	os.exit(T.failed == 0 and 0 or 1)
end

--- T.unhex(lines...) -> bytes of the hex strings, joined
function T.unhex(...)
	local h = table.concat({ ... })
	return (h:gsub("%s", ""):gsub("..", function (x) return string.char(tonumber(x, 16)) end))
end

return T

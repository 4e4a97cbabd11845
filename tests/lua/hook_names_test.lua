-- Named hook constants (issue 14, item 28): pkt:hook() compares with
-- divert.PREROUTING .. divert.POSTROUTING, the kernel's enum nf_inet_hooks,
-- and pkt:hook_name() gives the names `luadivert run --hook` takes.
--   luajit tests/lua/hook_names_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local divert = require "divert"
local packet = require "divert.packet"

T.check("the constants are the kernel's hook numbers", function ()
	T.eq(divert.PREROUTING, 0, "PREROUTING"); T.eq(divert.INPUT, 1, "INPUT")
	T.eq(divert.FORWARD, 2, "FORWARD"); T.eq(divert.OUTPUT, 3, "OUTPUT")
	T.eq(divert.POSTROUTING, 4, "POSTROUTING")
end)

T.check("pkt:hook() and pkt:hook_name() on each hook", function ()
	local d = ffi.new("struct ld_packet")
	local pkt = packet.new()
	for n, name in pairs { [0] = "prerouting", "input", "forward", "output", "postrouting" } do
		d.hook = n
		pkt:attach(d)
		T.eq(pkt:hook(), divert[name:upper()], name)
		T.eq(pkt:hook_name(), name, "name of " .. n)
		T.eq(divert.HOOK_NAMES[n], name, "HOOK_NAMES[" .. n .. "]")
	end
	d.hook = 9
	T.eq(pkt:attach(d):hook_name(), nil, "an unknown hook has no name")
end)

T.done()

-- divert.metrics: what a policy's counters and gauges look like in the
-- shared table the C side renders, and that updating them in a per-packet
-- loop allocates nothing and stays compiled (as tests/lua/alloc_jit_test.lua
-- does for the packet views).
--   luajit tests/lua/metrics_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "divert.abi"
local metrics = require "divert.metrics"
local jit = require "jit"
local vmdef = require "jit.vmdef"

require("divert").tune_jit()

T.check("counters and gauges land in the shared table", function ()
	local t = metrics.tables()
	local c = metrics.counter("test_hits_total", { kind = "a" })
	local g = metrics.gauge("test_level")
	c:inc(); c:inc(4); g:set(7)
	assert(t.nuser >= 2)
	local found = 0
	for i = 0, t.nuser - 1 do
		local u = t.user[i]
		if ffi.string(u.name) == "test_hits_total" then
			assert(u.value == 5 and ffi.string(u.labels) == 'kind="a"' and u.kind == ffi.C.LD_METRIC_COUNTER)
			found = found + 1
		elseif ffi.string(u.name) == "test_level" then
			assert(u.value == 7 and u.kind == ffi.C.LD_METRIC_GAUGE)
			found = found + 1
		end
	end
	assert(found == 2, "both metrics found")
end)

T.check("bad names and labels are refused with the caller's line", function ()
	local ok, err = pcall(function () return metrics.counter("1bad") end)
	assert(not ok and err:find("metrics_test.lua"), err)
	ok, err = pcall(metrics.gauge, "x", { ["bad-label"] = 1 })
	assert(not ok and err:find("label name"), err)
	ok, err = pcall(metrics.gauge, "test_hits_total", { kind = "a" })
	assert(not ok and err:find("already a counter"), err)
	ok, err = pcall(metrics.counter, string.rep("n", 60))
	assert(not ok and err:find("longer than"), err)
end)

T.check("a host's table is used when attached", function ()
	local mine = ffi.new("struct ld_metric_tables")
	metrics.attach(mine)
	local c = metrics.counter("test_attached_total")
	c:inc(3)
	assert(mine.nuser == 1 and mine.user[0].value == 3)
	assert(mine.delay_le_s[0] == 0.0001 and mine.delay_le_s[15] == math.huge)
	local p = metrics.pipe_slot("up")
	assert(mine.npipes == 1 and p == mine.pipes[0])
end)

T.check("inc/set/add in a hot loop: compiled, no allocation", function ()
	local c = metrics.counter("test_hot_total", { lane = "1" })
	local g = metrics.gauge("test_hot_level")
	local p = metrics.pipe_slot("hot")
	local aborts = {}
	jit.attach(function (what, _, _, _, otr, oex)
		if what == "abort" then
			local msg = vmdef.traceerr[otr] or tostring(otr)
			aborts[#aborts + 1] = type(oex) == "number" and msg:format(oex) or msg
		end
	end, "trace")
	local function run(n)
		for i = 1, n do
			c:inc()
			g:set(i)
			g:add(-1)
			metrics.pipe_out(p, (i % 7) * 1e6, i * 1e3)
		end
	end
	run(1e4)
	collectgarbage()
	collectgarbage("stop")
	local before = collectgarbage("count")
	run(1e6)
	local grew = (collectgarbage("count") - before) * 1024
	collectgarbage("restart")
	jit.attach(function () end)
	assert(c.value == 1e4 + 1e6, "counted")
	assert(grew < 1024, ("heap grew %d bytes"):format(grew))
	for _, a in ipairs(aborts) do
		assert(not a:find("NYI") and not a:find("blacklist"), a)
	end
	assert(p.delayed > 0 and p.delay_count[0] > 0)
end)

T.done()

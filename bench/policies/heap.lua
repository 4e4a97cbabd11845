-- bench/policies/heap.lua: pass-all that measures the Lua heap. After
-- WARM packets (JIT traces compiled) it collects garbage, stops the
-- collector and notes the heap size; at exit it prints how much the heap
-- grew since, so any allocation on the per-packet path shows up.
--   bench-heap: init_kb=.. warm_kb=.. end_kb=.. packets=.. warm_at=..
local PASS = require("divert").PASS
local WARM = 20000
local n, init_kb, warm_kb = 0, 0, -1

local function on_packet(pkt)
	n = n + 1
	if n == WARM then
		collectgarbage()
		collectgarbage("stop")
		warm_kb = collectgarbage("count")
	end
	return PASS
end

return {
	init = function ()
		collectgarbage()
		init_kb = collectgarbage("count")
	end,
	on_packet = on_packet,
	on_stop = function ()
		local end_kb = collectgarbage("count")
		collectgarbage("restart")
		io.stderr:write(string.format(
			"bench-heap: init_kb=%.1f warm_kb=%.1f end_kb=%.1f packets=%d warm_at=%d\n",
			init_kb, warm_kb, end_kb, n, WARM))
	end,
}

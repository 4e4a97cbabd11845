-- bench/policies/pass_all.lua: accept everything, look at nothing.
-- Measures the engine's own cost per packet (receive, one Lua call per
-- batch, the dispatch loop, batched verdicts).
local PASS = require("divert").PASS
return function (pkt)
	return PASS
end

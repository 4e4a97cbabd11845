-- bench/policies/offload.lua: offload every connection at its first packet
-- (issue 16): the rest of it never reaches the queue. bench/offload_bench.sh.
local OFFLOAD = require("divert").OFFLOAD
return function (pkt)
	return OFFLOAD
end

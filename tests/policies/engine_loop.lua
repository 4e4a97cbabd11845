-- Test policy: LOOP=repeat returns REPEAT for every packet, LOOP=self
-- queues it to queue 0 (where it came from), LOOP=bypass to queue 7 (no
-- listener) with the bypass flag.
local divert = require "divert"
local mode = os.getenv("LOOP") or "repeat"
local v
if mode == "repeat" then v = divert.REPEAT
elseif mode == "self" then v = divert.queue(0)
else v = divert.queue(7, { bypass = true }) end

return function () return v end

-- rules_dup.lua: pass every packet and inject one duplicate of it, logging
-- each packet handled to $RULES_LOG (see rules_log.lua). The duplicates carry
-- the skip mark, so the divert rules must not send them here again.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
return dofile(here .. "rules_log.lua")("accept", 1)

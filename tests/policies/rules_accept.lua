-- rules_accept.lua: pass every packet the divert rules send here, logging each to
-- $RULES_LOG (see rules_log.lua). Used by tests/integration/test_rules_*.sh.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
return dofile(here .. "rules_log.lua")("accept")

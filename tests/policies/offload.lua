-- offload.lua: divert.OFFLOAD for every packet the rules send here, so each
-- connection reaches the policy with its first packet only (and again with
-- its next packet after a reload). tests/integration/test_offload.sh.
local divert = require "divert"
local OFFLOAD = divert.OFFLOAD
return function() return OFFLOAD end

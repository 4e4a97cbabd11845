-- Reload test policy, version "mark": like reload_pass.lua, and marks 0x1.
local divert = require "divert"
local count = 0
return {
  on_packet = function (pkt) count = count + 1; pkt:set_mark(1); return divert.PASS end,
  save = function () return count end,
  on_reload = function (old) count = old or 0 end,
  on_stop = function ()
    -- the sandboxed daemon writes no files: ld_stop copies this line to $LD_TEST_STATS
    io.stderr:write("ld-test-stats: ", count, "\n")
  end,
}

-- Reload test policy, version "pass": count packets, pass them; hand the
-- count to the next version.
local divert = require "divert"
local count = 0
return {
  on_packet = function () count = count + 1; return divert.PASS end,
  save = function () return count end,
  on_reload = function (old) count = old or 0 end,
  on_stop = function ()
    -- the sandboxed daemon writes no files: ld_stop copies this line to $LD_TEST_STATS
    io.stderr:write("ld-test-stats: ", count, "\n")
  end,
}

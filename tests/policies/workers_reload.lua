-- Issue 16 (--workers): reload across workers. Counts packets, hands the
-- count to the next version; VERSION is rewritten by the test for each
-- reload, and each worker says at the stop which version it ran.
local divert = require "divert"
local VERSION = "v1"
local count = 0
return {
  on_packet = function () count = count + 1; return divert.PASS end,
  save = function () return count end,
  on_reload = function (old) count = old or 0 end,
  on_stop = function ()
    -- one write: two workers share stderr
    io.stderr:write(string.format("ld-test-stats: reload-worker %s %d\n", VERSION, count))
  end,
}

-- Reload test policy, version "pass": count packets, pass them; hand the
-- count to the next version.
local divert = require "divert"
local count = 0
return {
  on_packet = function () count = count + 1; return divert.PASS end,
  save = function () return count end,
  on_reload = function (old) count = old or 0 end,
  on_stop = function ()
    local path = os.getenv("LD_TEST_STATS")
    if path then local f = assert(io.open(path, "w")); f:write(count, "\n"); f:close() end
  end,
}

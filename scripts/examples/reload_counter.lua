-- reload_counter.lua: a policy whose counters survive `luadivert reload`.
-- Edit it (e.g. change REPORT_EVERY) while it runs, then reload: the count
-- goes on from where it was.
local divert = require "divert"

local REPORT_EVERY = 10000
local state = { packets = 0, bytes = 0 }

return {
  on_packet = function (pkt)
    local s = state
    s.packets = s.packets + 1
    s.bytes = s.bytes + pkt:len()
    if s.packets % REPORT_EVERY == 0 then
      io.stderr:write(string.format("reload_counter: %d packets, %d bytes\n", s.packets, s.bytes))
    end
    return divert.PASS
  end,
  save = function () return state end,
  on_reload = function (old) if old then state = old end end,
}

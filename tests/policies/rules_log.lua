-- rules_log.lua: the handler behind rules_drop.lua, rules_accept.lua and
-- rules_dup.lua. Gives every packet one verdict and appends one line per
-- packet to $RULES_LOG, in the format of tests/tools/rules_driver --log:
--   hook=output v=4 proto=17 sport=40000 dport=9000 mark=0x0 len=92
-- so the divert-rules tests read the same log whichever diverter runs.
-- (A test policy: it formats a string per packet, which a real one must not.)
local divert = require "divert"

local hooks = { [0] = "prerouting", "input", "forward", "output", "postrouting" }

return function(verdict, dup)
  local path = os.getenv("RULES_LOG")
  local log = path and assert(io.open(path, "a"))
  local v = verdict == "drop" and divert.DROP or divert.PASS
  return function(pkt)
    if log then
      local p, len = pkt:data(), pkt:len()
      local ver = len > 0 and math.floor(p[0] / 16) or 0
      local proto, l4 = 0, 0
      if ver == 4 and len >= 20 then
        proto, l4 = p[9], (p[0] % 16) * 4
      elseif ver == 6 and len >= 40 then
        proto, l4 = p[6], 40
      end
      local sport, dport = 0, 0
      if (proto == 6 or proto == 17) and l4 > 0 and len >= l4 + 4 then
        sport, dport = p[l4] * 256 + p[l4 + 1], p[l4 + 2] * 256 + p[l4 + 3]
      end
      log:write(string.format("hook=%s v=%d proto=%d sport=%d dport=%d mark=0x%x len=%d\n",
        hooks[pkt:hook()] or "?", ver, proto, sport, dport, pkt:mark(), len))
      log:flush()
    end
    if dup then pkt:duplicate(dup) end
    return v
  end
end

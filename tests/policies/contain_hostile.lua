-- Hostile policy for tests/integration/test_contain.sh. Datagrams to port
-- 9000 pass (through a 200 ms delay pipe with LD_HOSTILE=hold); a datagram to port 9001
-- does what LD_HOSTILE says: loop (forever), exit (os.exit(3)), table (raise
-- a table), slow (100 ms of CPU, then pass).
local divert = require "divert"
local mode = os.getenv("LD_HOSTILE") or "pass"
local clock = os.clock
local pipe = mode == "hold" and require("divert.shape").pipe{ delay = 200 }

return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 9001 then
    if mode == "loop" then
      while true do end
    elseif mode == "exit" then
      os.exit(3)
    elseif mode == "table" then
      error({ code = 1 })
    elseif mode == "slow" then
      local t = clock() + 0.1
      while clock() < t do end
    end
  elseif pipe then
    return pipe(pkt)
  end
  return divert.PASS
end

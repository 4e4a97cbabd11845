-- For the observability tests (tests/integration/test_observe_*.sh): UDP to
-- port 9001 is dropped, to 9002 goes through the named pipe "uplink" (20 ms
-- delay: every packet held), to 9003 through "lossy" (loss 1: every packet
-- lost), to 9004 has its filler bytes rewritten ('U' -> 'M'); every packet
-- is counted in a policy metric by port.
local divert = require "divert"
local shape = require "divert.shape"
local metrics = require "divert.metrics"

local uplink = shape.pipe { name = "uplink", delay = 20 }
local lossy = shape.pipe { name = "lossy", loss = 1 }
local seen = {
  [9000] = metrics.counter("observe_test_packets_total", { port = "9000" }),
  [9001] = metrics.counter("observe_test_packets_total", { port = "9001" }),
  [9002] = metrics.counter("observe_test_packets_total", { port = "9002" }),
  [9003] = metrics.counter("observe_test_packets_total", { port = "9003" }),
}
local last_port = metrics.gauge("observe_test_last_port")
local U, M = string.byte("U"), string.byte("M")

return function (pkt)
  local udp = pkt:udp()
  if not udp then return divert.PASS end
  local port = udp:dst_port()
  local c = seen[port]
  if c then c:inc() end
  last_port:set(port)
  if port == 9001 then return divert.DROP end
  if port == 9002 then return uplink(pkt) end
  if port == 9003 then return lossy(pkt) end
  if port == 9004 then
    local p, n = pkt:payload()
    for i = 16, n - 1 do
      if p[i] == U then p[i] = M end
    end
    assert(pkt:fix_checksums())
  end
  return divert.PASS
end

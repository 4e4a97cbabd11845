-- Test policy: keeps the last packet and its IPv4 view past the handler;
-- on_stop reads them (the receive buffers must still be mapped), and
-- with KEEP_STOP_ERROR set raises a table with __tostring. With
-- KEEP_MARK set, on_stop writes that file (luadivert check must not).
local divert = require "divert"
local kept_pkt, kept_ip

return {
  on_packet = function (pkt)
    kept_pkt, kept_ip = pkt, pkt:ipv4()
    return divert.PASS
  end,
  on_stop = function ()
    local mark = os.getenv("KEEP_MARK")
    if mark then io.open(mark, "w"):close() end
    if kept_ip then
      io.stderr:write(string.format("on_stop: kept packet len %d ttl %d\n", kept_pkt:len(), kept_ip:ttl()))
    end
    if os.getenv("KEEP_STOP_ERROR") then
      error(setmetatable({}, { __tostring = function () return "on_stop object error" end }))
    end
  end,
}

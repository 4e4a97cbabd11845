-- Test policy: drop what user "nobody" (uid 65534) sends; pass the rest.
-- The kernel reports the sending socket's owner for local traffic (NFQA_UID).
local divert = require "divert"
return function (pkt)
  if pkt:uid() == 65534 then return divert.DROP end
  return divert.PASS
end

-- The engine's dispatch loop (lua/divert/host.lua) over synthetic batches,
-- without the kernel: verdicts land in the descriptors, a handler error and a
-- non-verdict are reported, the hot loop allocates nothing and compiles.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local ffi = require "divert.abi"
local host = require "divert.host"
local divert = require "divert"
local jutil = require "jit.util"

local failures = 0
local function check(desc, ok)
  print((ok and "ok - " or "not ok - ") .. desc)
  if not ok then failures = failures + 1 end
end

-- 64 IPv4/UDP packets, 10.0.0.1:1000 -> 10.0.0.2:(9000 + i % 3), 28 bytes + 4 payload
local N = 64
local pkts = ffi.new("struct ld_packet[?]", N)
local buf = ffi.new("uint8_t[?]", N * 128)
for i = 0, N - 1 do
  local p = buf + i * 128
  local bytes = { 0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                  0x03, 0xe8, 0x23, 0x28 + i % 3, 0, 12, 0, 0, 1, 2, 3, 4 }
  for j = 1, #bytes do p[j - 1] = bytes[j] end
  pkts[i].data, pkts[i].len, pkts[i].cap, pkts[i].id = p, 32, 128, i + 1
end
local batch = ffi.new("struct ld_batch")
batch.pkts, batch.n, batch.default_verdict = pkts, N, divert.PASS

local function reset()
  for i = 0, N - 1 do pkts[i].verdict, pkts[i].set = divert.PASS, 0 end
  batch.next = 0
end

local function policy_file(src)
  local name = os.tmpname()
  local f = assert(io.open(name, "w")); f:write(src); f:close()
  return name
end

-- 1. verdicts by port
local p1 = policy_file [[
local divert = require "divert"
return function (pkt)
  local udp = pkt:udp()
  if udp and udp:dst_port() == 9001 then return divert.DROP end
  return divert.PASS
end]]
local dispatch = host.start(p1, batch)
reset(); dispatch()
local dropped = 0
for i = 0, N - 1 do if pkts[i].verdict == divert.DROP then dropped = dropped + 1 end end
check("port 9001 dropped, others passed (" .. dropped .. " of 64)", dropped == 21)
check("dispatch finished the batch", batch.next == N)

-- 2. allocation and JIT: warm up, then 100k packets with the heap measured
local aborts, traces_in_host = {}, 0
local function on_trace(what, tr, func, pc, otr, oex)
  local info = func and jutil.funcinfo(func)
  local src = info and info.source or "?"
  -- "inner/leaving loop in root trace" is how LuaJIT finds where a loop
  -- starts (it then roots a trace there; alloc_jit_test.lua says more): it
  -- happens now and then during warm-up and is not an abort that leaves
  -- code interpreted. Every other abort is.
  local msg = require("jit.vmdef").traceerr[otr] or ""
  if what == "abort" and not msg:find("loop in root trace", 1, true) and
     (src:find("host.lua", 1, true) or src:find(p1, 1, true)) then
    aborts[#aborts + 1] = string.format("%s:%s %s", src, tostring(info.currentline),
                                        tostring(otr))
  elseif what == "stop" and src:find("host.lua", 1, true) then
    traces_in_host = traces_in_host + 1
  end
end
jit.attach(on_trace, "trace")
-- One function for warm-up and measurement: a new loop would compile new traces.
local function run(batches)
  for _ = 1, batches do batch.next = 0; dispatch() end
end
run(400)
jit.attach(on_trace)  -- detach: the callback itself allocates
run(1600)
collectgarbage(); collectgarbage()
local before = collectgarbage("count")
run(1563)  -- 100k packets
local grown = (collectgarbage("count") - before) * 1024
check(string.format("100k packets allocate nothing (heap grew %d bytes)", grown), grown <= 0)
check("no trace abort in the dispatch loop or handler (" .. table.concat(aborts, "; ") .. ")",
      #aborts == 0)
check("the dispatch loop was compiled (" .. traces_in_host .. " traces)", traces_in_host > 0)

-- 3. a handler error stops dispatch at that packet; C resumes after it
local p2 = policy_file [[
local divert = require "divert"
return function (pkt)
  if pkt:id() == 10 then error("boom") end
  return divert.DROP
end]]
dispatch = host.reload(p2)
reset()
local ok, err = pcall(dispatch)
check("handler error propagates with file:line: " .. tostring(err), not ok and err:find(p2 .. ":3: boom", 1, true) ~= nil)
check("batch.next names the failing packet", batch.next == 9)

-- 4. a non-verdict is an error naming where the handler was defined
local p3 = policy_file [[
return function (pkt) return "yes" end]]
dispatch = host.reload(p3)
reset()
ok, err = pcall(dispatch)
check("non-verdict reported: " .. tostring(err), not ok and err:find("not a verdict", 1, true) ~= nil
      and err:find(p3 .. ":1", 1, true) ~= nil)

-- 5. a reload with errors keeps the running policy: the host still has the
-- old one as its current policy (the next reload hands over the OLD
-- policy's save()), its dispatch still decides, and the module the failed
-- version replaced is the old one again.
local p4old = policy_file [[
local divert = require "divert"
return { on_packet = function () return divert.DROP end,
         save = function () return "state of the old policy" end }]]
dispatch = host.reload(p4old)
local p4 = policy_file "return function (pkt) return divert.PASS"
ok, err = pcall(host.reload, p4)
check("syntax error refused: " .. tostring(err), not ok and err:find("has errors, not reloading", 1, true) ~= nil)
local p4init = policy_file [[
local divert = require "divert"
return { on_packet = function () return divert.PASS end,
         init = function () error("init fails") end }]]
ok, err = pcall(host.reload, p4init)
check("failing init refused: " .. tostring(err), not ok and err:find("init fails", 1, true) ~= nil)
reset(); dispatch()
local drops = 0
for i = 0, N - 1 do if pkts[i].verdict == divert.DROP then drops = drops + 1 end end
check("the running policy still decides (" .. drops .. " of 64 dropped)", drops == N)
check("the host still watches the running policy's file",
      host.watch_files():match("^[^\n]*") == p4old)
local p4next = policy_file [[
local divert = require "divert"
return { on_packet = function () return divert.PASS end,
         on_reload = function (old) assert(old == "state of the old policy", "got " .. tostring(old)) end }]]
ok, err = pcall(host.reload, p4next)
check("the next reload takes over the running policy's state: " .. tostring(err), ok)

-- 6. state handed over: save() -> on_reload()
local p5 = policy_file [[
local divert = require "divert"
local n = 0
return { on_packet = function () n = n + 1; return divert.PASS end,
         save = function () return n end,
         on_reload = function (old) n = old or 0 end }]]
dispatch = host.reload(p5)
reset(); dispatch()
dispatch = host.reload(p5)
reset(); dispatch()
local p6 = policy_file [[
local divert = require "divert"
local got
return { on_packet = function () return divert.PASS end,
         on_reload = function (old) got = old; assert(old == 128, "got " .. tostring(old)) end }]]
ok, err = pcall(host.reload, p6)
check("counter carried across reloads: " .. tostring(err), ok)

-- 7. across processes: save_state() encodes, restore_state() decodes into
-- on_reload; what cannot be carried refuses with the path
local p7 = policy_file [[
local divert = require "divert"
local st = { n = 7, peers = { a = true } }
return { on_packet = function () return divert.PASS end,
         save = function () return st end,
         on_reload = function (old) _G.LD_TEST_GOT = old end }]]
host.start(p7, batch)
local bytes = host.save_state()
host.start(p7, batch)
host.restore_state(bytes)
check("state encoded and decoded: n = " .. tostring(_G.LD_TEST_GOT and _G.LD_TEST_GOT.n),
      type(bytes) == "string" and _G.LD_TEST_GOT.n == 7 and _G.LD_TEST_GOT.peers.a == true)
host.restore_state(nil)
check("no saved state: on_reload(nil)", _G.LD_TEST_GOT == nil)
local p8 = policy_file [[
local divert = require "divert"
return { on_packet = function () return divert.PASS end,
         save = function () return { pipe = function () end } end }]]
host.start(p8, batch)
ok, err = pcall(host.save_state)
check("a function in the state refuses: " .. tostring(err),
      not ok and err:find("save() of the running policy: state.pipe: cannot carry a function", 1, true) ~= nil)

for _, f in ipairs { p1, p2, p3, p4, p4old, p4init, p4next, p5, p6, p7, p8 } do os.remove(f) end
print(string.format("host: %d failed", failures))
os.exit(failures == 0 and 0 or 1)

-- luadivert's Lua library (lua/divert/): packet views, checksums, addresses,
-- prefix sets, flow ids, shaping, usable from any LuaJIT program.
--   luarocks make rockspec/luadivert-scm-1.rockspec        (from the repo root)
-- Pure Lua on the LuaJIT FFI: nothing to compile. Every lua/divert/*.lua
-- and lua/divert/*/*.lua file is listed below (tests/lua/rockspec_test.lua
-- checks it).
rockspec_format = "3.0"
package = "luadivert"
version = "scm-1"
source = {
   url = "git+https://github.com/luadivert/luadivert.git",
}
description = {
   summary = "Divert sockets for Linux, scripted in LuaJIT: the packet library",
   detailed = [[
      FFI views over IPv4, IPv6 (with extension headers), TCP (with options),
      UDP, ICMP and ICMPv6; full and incremental checksums; address parsing,
      longest-prefix sets and flow ids. Allocation-free and JIT-friendly on the
      per-packet path. The luadivert daemon runs policies written with it on
      NFQUEUE traffic; the library works on any buffer, from any LuaJIT.
   ]],
   license = "MIT",
   labels = { "network", "packet", "ffi", "luajit", "nfqueue" },
}
dependencies = {
   "lua >= 5.1, < 5.2",   -- LuaJIT 2.1 (the modules need its ffi and bit)
}
build = {
   type = "builtin",
   modules = {
      ["divert"]           = "lua/divert/init.lua",
      ["divert.abi"]       = "lua/divert/abi.lua",
      ["divert.addr"]      = "lua/divert/addr.lua",
      ["divert.checksum"]  = "lua/divert/checksum.lua",
      ["divert.flow"]      = "lua/divert/flow.lua",
      ["divert.host"]      = "lua/divert/host.lua",
      ["divert.icmp"]      = "lua/divert/icmp.lua",
      ["divert.inject"]    = "lua/divert/inject.lua",
      ["divert.ipv4"]      = "lua/divert/ipv4.lua",
      ["divert.ipv6"]      = "lua/divert/ipv6.lua",
      ["divert.metrics"]   = "lua/divert/metrics.lua",
      ["divert.packet"]    = "lua/divert/packet.lua",
      ["divert.payload"]   = "lua/divert/payload.lua",
      ["divert.prefixset"] = "lua/divert/prefixset.lua",
      ["divert.rng"]       = "lua/divert/rng.lua",
      ["divert.serial"]    = "lua/divert/serial.lua",
      ["divert.shape"]     = "lua/divert/shape.lua",
      ["divert.shape.delay"]   = "lua/divert/shape/delay.lua",
      ["divert.shape.flows"]   = "lua/divert/shape/flows.lua",
      ["divert.shape.impair"]  = "lua/divert/shape/impair.lua",
      ["divert.shape.loss"]    = "lua/divert/shape/loss.lua",
      ["divert.shape.options"] = "lua/divert/shape/options.lua",
      ["divert.shape.pipe"]    = "lua/divert/shape/pipe.lua",
      ["divert.shape.rate"]    = "lua/divert/shape/rate.lua",
      ["divert.tcp"]       = "lua/divert/tcp.lua",
      ["divert.udp"]       = "lua/divert/udp.lua",
      ["divert.view"]      = "lua/divert/view.lua",
   },
   copy_directories = { "docs" },
}

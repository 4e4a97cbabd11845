-- The C compiler and LuaJIT's ffi.cdef must agree on every shared struct:
-- compare build/tools/abi_dump's field offsets and struct sizes with
-- ffi.offsetof/ffi.sizeof (every offset plus the total size pins the layout).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local ffi = require "divert.abi"

local dump = io.popen("build/tools/abi_dump")
local checked, bad = 0, 0
for line in dump:lines() do
  local name, off, size = line:match("^(%S+) (%d+) (%d+)$")
  off, size = tonumber(off), tonumber(size)
  local s, f = name:match("^(ld_[%w_]+)%.(.+)$")
  local lua_off, lua_size
  if s then
    lua_off, lua_size = ffi.offsetof("struct " .. s, f), size
  elseif name:match("^ld_") then
    lua_off, lua_size = 0, ffi.sizeof("struct " .. name)
  else
    lua_off, lua_size = 0, ffi.C[name]
  end
  checked = checked + 1
  if lua_off ~= off or lua_size ~= size then
    bad = bad + 1
    print(string.format("not ok %s: C offset %d size %d, Lua offset %s size %s",
                        name, off, size, tostring(lua_off), tostring(lua_size)))
  end
end
dump:close()
-- divert's verdicts are typed as literals in init.lua (require "divert"
-- loads no FFI): they must be the C values
local divert = require "divert"
for lua_name, c_name in pairs({ DROP = "LD_DROP", PASS = "LD_PASS", REPEAT = "LD_REPEAT" }) do
  checked = checked + 1
  if divert[lua_name] ~= ffi.C[c_name] then
    bad = bad + 1
    print(string.format("not ok divert.%s = %s, %s = %s", lua_name, tostring(divert[lua_name]),
                        c_name, tostring(ffi.C[c_name])))
  end
end
assert(checked > 40, "build/tools/abi_dump printed too little: run make first")
print(string.format("abi: %d fields and sizes checked, %d differ", checked, bad))
os.exit(bad == 0 and 0 or 1)

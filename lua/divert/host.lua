-- divert.host: the Lua half of the engine (core/lua_host.c is the C half).
--
-- start() loads a policy and returns the dispatch function that C calls
-- once per batch. The dispatch loop is the hot path: it must not allocate
-- and must stay JIT-compiled (tests/lua/host_test.lua checks both).
-- reload() loads a new version of the policy in the same Lua state, so a
-- policy can hand tables, counters and shaping pipes to its successor.
local ffi = require "divert.abi"
local divert = require "divert"
local packet = require "divert.packet"
local serial = require "divert.serial"

local M = {}

local PASS, DROP = divert.PASS, divert.DROP
local is_verdict = divert.is_verdict
local batch_ptr_t = ffi.typeof("struct ld_batch *")

local batch            -- struct ld_batch * of this worker
local current          -- the running policy record
local base_modules     -- package.loaded keys present before any policy ran

-- Where a function was defined, for messages about what it returned.
local function where(fn)
  local info = debug.getinfo(fn, "S")
  return info.short_src .. ":" .. info.linedefined
end

local function bad_verdict(v, handler_at)
  error(string.format("%s: handler returned %s (%s), not a verdict",
                      handler_at, tostring(v), type(v)), 0)
end

-- Load a policy file: it returns a handler function, or a table with
-- on_packet and optionally init, on_stop, save, on_reload.
local function load_policy(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, ret = pcall(chunk)
  if not ok then return nil, tostring(ret) end
  local pol
  if type(ret) == "function" then
    pol = { on_packet = ret }
  elseif type(ret) == "table" and type(ret.on_packet) == "function" then
    pol = ret
  else
    return nil, string.format("%s: the policy must return a function or a table with " ..
                              "an on_packet function (it returned a %s)", path, type(ret))
  end
  for _, k in ipairs { "init", "on_stop", "save", "on_reload" } do
    if pol[k] ~= nil and type(pol[k]) ~= "function" then
      return nil, string.format("%s: %s must be a function (it is a %s)", path, k, type(pol[k]))
    end
  end
  pol.path = path
  return pol
end

local function build_dispatch(b, pol)
  local handler = pol.on_packet
  local handler_at = where(handler)
  local pkts = b.pkts
  local pkt = packet.new()
  return function()
    local n = b.n
    local i = b.next
    while i < n do
      b.next = i
      local d = pkts + i
      local v = handler(pkt:attach(d))
      if v == PASS or v == DROP then
        d.verdict = v
      elseif is_verdict(v) then
        d.verdict = v
      else
        bad_verdict(v, handler_at)
      end
      i = i + 1
    end
    b.next = n
  end
end

local function run_init(pol, ...)
  if pol.init then
    local ok, err = pcall(pol.init, ...)
    if not ok then return nil, tostring(err) end
  end
  return true
end

-- What a policy may not do from inside the daemon, as errors it can see
-- (docs/sandbox.md): ending the process would take the packet in hand, the
-- rules and the pid file with it; commands and pipes need a fork and an
-- exec, which the sandbox refuses anyway.
local function forbid(name)
  return function() error(name .. " is not allowed in a policy", 2) end
end

local function restrict_environment()
  os.exit = forbid("os.exit")
  os.execute = forbid("os.execute")
  io.popen = forbid("io.popen")
end

--- Load the policy at path and return the dispatch function for the batch
-- at batch_addr (a light userdata from C). Raises "file:line: message".
-- restrict (the daemon passes true): os.exit, os.execute and io.popen raise.
function M.start(path, batch_addr, restrict)
  -- Room for a whole handler in one trace: with LuaJIT's default limits a
  -- policy that reads several headers falls back to the interpreter (and
  -- allocates per packet). The shaping and library tests measured this.
  divert.tune_jit()
  if restrict then restrict_environment() end
  batch = ffi.cast(batch_ptr_t, batch_addr)
  base_modules = {}
  for k in pairs(package.loaded) do base_modules[k] = true end
  local pol, err = load_policy(path)
  if not pol then error(err, 0) end
  local ok, ierr = run_init(pol)
  if not ok then error(ierr, 0) end
  current = pol
  return build_dispatch(batch, pol)
end

-- Modules the policy required itself (not the library, not the standard
-- ones) are dropped from package.loaded so that reload reads them anew.
local function unload_policy_modules()
  local saved = {}
  for k, v in pairs(package.loaded) do
    if not base_modules[k] and not k:match("^divert%.") and k ~= "divert" then
      saved[k] = v
    end
  end
  for k in pairs(saved) do package.loaded[k] = nil end
  return saved
end

--- Load a new version of the running policy. On any error the running
-- policy stays and the error ("file:line: message") is raised.
function M.reload(path)
  local saved = unload_policy_modules()
  local function fail(err)
    for k, v in pairs(saved) do package.loaded[k] = v end
    error(path .. " has errors, not reloading: " .. err, 0)
  end
  local pol, err = load_policy(path)
  if not pol then fail(err) end
  local state
  if current.save then
    local ok, s = pcall(current.save)
    if not ok then fail("save() of the running policy: " .. tostring(s)) end
    state = s
  end
  local ok, ierr = run_init(pol)
  if not ok then fail(ierr) end
  if pol.on_reload then
    local rok, rerr = pcall(pol.on_reload, state)
    if not rok then fail(tostring(rerr)) end
  end
  current = pol
  return build_dispatch(batch, pol)
end

--- The running policy's save(), encoded for the next worker process
-- (divert.serial); nil when it has no save(). Raises on any error.
function M.save_state()
  if not (current and current.save) then return nil end
  local ok, s = pcall(current.save)
  if not ok then error("save() of the running policy: " .. tostring(s), 0) end
  local eok, bytes = pcall(serial.encode, s)
  if not eok then error("save() of the running policy: " .. tostring(bytes), 0) end
  return bytes
end

--- Hand what the previous worker's save() returned (bytes from
-- save_state, or nil) to this policy's on_reload. Raises on any error.
function M.restore_state(bytes)
  local state
  if bytes then state = serial.decode(bytes) end
  if current.on_reload then
    local ok, err = pcall(current.on_reload, state)
    if not ok then error(tostring(err), 0) end
  end
end

--- Call the policy's on_stop, if any.
function M.stop()
  if current and current.on_stop then current.on_stop() end
end

return M

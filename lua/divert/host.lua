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
local pending          -- a reload's policy, loaded but not switched to yet
local pending_saved    -- the modules it unloaded, put back if it is abandoned
local declared_rules   -- defined below

-- Where a function was defined, for messages about what it returned.
local function where(fn)
  local info = debug.getinfo(fn, "S")
  return info.short_src .. ":" .. info.linedefined
end

local function bad_verdict(v, handler_at)
  error(string.format("%s: handler returned %s (%s), not a verdict",
                      handler_at, tostring(v), type(v)), 0)
end

-- "file:line" of the first line of the policy's source that holds text
-- (a field's value), or just "file": messages about declared rules point
-- at the line the user wrote.
local function line_of(path, text)
  local f = text ~= "" and io.open(path, "r")
  if f then
    local n = 0
    for line in f:lines() do
      n = n + 1
      if line:find(text, 1, true) then f:close(); return path .. ":" .. n end
    end
    f:close()
  end
  return path
end

-- The divert rules a policy table declares: filter (tcpdump syntax), hook
-- (a name or a list of names), family (4, 6 or "both"). Types are checked
-- here; C parses the hook names and compiles the filter. Returns a plain
-- table of strings and numbers (nil when nothing is declared), or nil and
-- "file:line: message" naming the field.
function declared_rules(pol, path)
  local filter, hook, family = pol.filter, pol.hook, pol.family
  if filter == nil and hook == nil and family == nil then return nil end
  local r = {}
  if filter ~= nil then
    if type(filter) ~= "string" then
      return nil, string.format("%s: filter must be a string in tcpdump syntax (it is a %s)",
                                line_of(path, "filter"), type(filter))
    end
    r.filter, r.filter_at = filter, line_of(path, filter)
  end
  if hook ~= nil then
    if type(hook) == "table" then
      local names = {}
      for i = 1, #hook do
        if type(hook[i]) ~= "string" then
          return nil, string.format("%s: hook[%d] must be a string (it is a %s)",
                                    line_of(path, "hook"), i, type(hook[i]))
        end
        names[i] = hook[i]
      end
      if #names == 0 then
        return nil, line_of(path, "hook") .. ": hook is an empty list"
      end
      hook = table.concat(names, ",")
    elseif type(hook) ~= "string" then
      return nil, string.format("%s: hook must be a name or a list of names (it is a %s)",
                                line_of(path, "hook"), type(hook))
    end
    r.hook, r.hook_at = hook, line_of(path, "hook")
  end
  if family ~= nil then
    local f = ({ [4] = 4, [6] = 6, ["4"] = 4, ["6"] = 6, both = 0 })[family]
    if not f then
      return nil, string.format("%s: family must be 4, 6 or \"both\" (it is %s)",
                                line_of(path, "family"), tostring(family))
    end
    r.family, r.family_at = f, line_of(path, "family")
  end
  return r
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
  local rules, rerr = declared_rules(pol, path)
  if rerr then return nil, rerr end
  pol.path = path
  pol.rules = rules
  return pol
end

-- Every packet object a dispatch function attaches (one per policy
-- version): stop() detaches them, so that a policy's on_stop or a finalizer
-- that kept one reads an empty packet, never unmapped memory.
local hosted = setmetatable({}, { __mode = "k" })

local function build_dispatch(b, pol)
  local handler = pol.on_packet
  local handler_at = where(handler)
  local pkts = b.pkts
  local pkt = packet.new()
  hosted[pkt] = true
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
-- at batch_addr (a light userdata from C); sink_addr, when given, is where
-- divert.inject() sends. Raises "file:line: message".
-- restrict (the daemon passes true): os.exit, os.execute and io.popen raise.
function M.start(path, batch_addr, sink_addr, restrict)
  -- Room for a whole handler in one trace: with LuaJIT's default limits a
  -- policy that reads several headers falls back to the interpreter (and
  -- allocates per packet). The shaping and library tests measured this.
  divert.tune_jit()
  if restrict then restrict_environment() end
  batch = ffi.cast(batch_ptr_t, batch_addr)
  if sink_addr then require("divert.inject").attach(sink_addr, batch) end
  -- the core's metrics table, for named pipes and divert.metrics (before the
  -- policy builds its pipes)
  if batch.metrics ~= nil then require("divert.metrics").attach(batch.metrics) end
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

-- A reload goes in steps so that the divert rules can change with the
-- code (core/reload.c): reload_load() loads the file and checks what it
-- declares; C compiles the declared filter; reload_prepare() hands the
-- state over (save -> init -> on_reload); C swaps the rules;
-- reload_commit() switches to the new dispatch. Until the commit, the
-- running policy handles every packet; reload_abort() drops the new one.

--- Put back the modules of the running policy and forget the pending one.
function M.reload_abort()
  if pending_saved then
    for k, v in pairs(pending_saved) do package.loaded[k] = v end
  end
  pending, pending_saved = nil, nil
end

local function fail_pending(path, err)
  M.reload_abort()
  error(path .. " has errors, not reloading: " .. err, 0)
end

--- Load the new version of the policy (its chunk runs; nothing of it is
-- called yet). Raises "file has errors, not reloading: file:line: message".
function M.reload_load(path)
  M.reload_abort()
  pending_saved = unload_policy_modules()
  local pol, err = load_policy(path)
  if not pol then fail_pending(path, err) end
  pending = pol
end

--- Hand the running policy's state to the loaded one: save, init, on_reload.
function M.reload_prepare()
  local pol = assert(pending, "reload_prepare without reload_load")
  local state
  if current.save then
    local ok, s = pcall(current.save)
    if not ok then fail_pending(pol.path, "save() of the running policy: " .. tostring(s)) end
    state = s
  end
  local ok, ierr = run_init(pol)
  if not ok then fail_pending(pol.path, ierr) end
  if pol.on_reload then
    local rok, rerr = pcall(pol.on_reload, state)
    if not rok then fail_pending(pol.path, tostring(rerr)) end
  end
end

--- Switch to the prepared policy: returns its dispatch function.
function M.reload_commit()
  local pol = assert(pending, "reload_commit without reload_load")
  pending, pending_saved = nil, nil
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

--- Load a new version of the running policy. On any error the running
-- policy stays and the error ("file:line: message") is raised.
function M.reload(path)
  M.reload_load(path)
  M.reload_prepare()
  return M.reload_commit()
end

--- The divert rules declared by the pending policy (during a reload) or
-- the running one: nil, or a table with filter (string), hook (names
-- separated by commas), family (0 both, 4, 6), and for each a "file:line"
-- (filter_at, hook_at, family_at) for messages.
function M.declared()
  local pol = pending or current
  return pol and pol.rules
end

--- The files a reload would read anew, one per line: the policy and the
-- modules it required itself (found on package.path). --watch watches
-- these, not whatever else lies in their directories.
function M.watch_files()
  local files = { current and current.path or nil }
  for k in pairs(package.loaded) do
    if base_modules and not base_modules[k] and not k:match("^divert%.") and k ~= "divert" then
      local path = package.searchpath and package.searchpath(k, package.path)
      if path then files[#files + 1] = path end
    end
  end
  return table.concat(files, "\n")
end

--- Call the policy's on_stop, if any (the packet buffers are still
-- mapped), then detach every packet object: views kept past this point
-- raise an error when used. Raises what on_stop raised.
function M.stop()
  local ok, err = true, nil
  if current and current.on_stop then ok, err = pcall(current.on_stop) end
  for pk in pairs(hosted) do pk:attach(packet.EMPTY) end
  if not ok then error(err, 0) end
end

return M

--- divert.serial: the state a policy's save() hands to its next version,
-- as bytes that can cross from one worker process to the next.
--
--   local serial = require "divert.serial"
--   local bytes = serial.encode({ seen = 10, peers = { ["198.18.0.2"] = true } })
--   local t = serial.decode(bytes)
--
-- What crosses: nil (at the top only), booleans, numbers (every double,
-- including inf, -inf and nan), strings (any bytes), and tables of these,
-- nested up to MAX_DEPTH levels, with keys of the same kinds. Not: functions,
-- coroutines, userdata, cdata (FFI objects), metatables, and a table reached
-- twice (a cycle, or two keys sharing one table) - encode raises an error
-- naming the path ("state.pipe: cannot carry a function"), so a reload
-- refuses rather than losing part of the state in silence.
--
-- Format: "T" true, "F" false, "Z" nil, "I"/"J"/"N" inf/-inf/nan,
-- "n<%.17g>;" numbers, "s<len>:<bytes>" strings, "{" key value ... "}" tables.
local M = {}

M.MAX_DEPTH = 100

local fmt, byte, sub, find, concat = string.format, string.byte, string.sub, string.find, table.concat
local huge = math.huge

local function path_of(path, k)
  if type(k) == "string" and find(k, "^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. tostring(k) .. "]"
end

local encode_value

local function encode_table(t, out, seen, depth, path)
  if seen[t] then error(path .. ": a table reached twice (cycle or shared table) cannot be carried", 0) end
  if depth > M.MAX_DEPTH then error(path .. ": nested deeper than " .. M.MAX_DEPTH .. " tables", 0) end
  if getmetatable(t) ~= nil then
    error(path .. ": a table with a metatable cannot be carried (its methods would be lost)", 0)
  end
  seen[t] = true
  out[#out + 1] = "{"
  for k, v in pairs(t) do
    local kp = path_of(path, k)
    encode_value(k, out, seen, depth + 1, kp .. " (key)")
    encode_value(v, out, seen, depth + 1, kp)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, out, seen, depth, path)
  local tv = type(v)
  if tv == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif tv == "number" then
    if v ~= v then out[#out + 1] = "N"
    elseif v == huge then out[#out + 1] = "I"
    elseif v == -huge then out[#out + 1] = "J"
    else out[#out + 1] = fmt("n%.17g;", v) end
  elseif tv == "string" then
    out[#out + 1] = "s" .. #v .. ":"
    out[#out + 1] = v
  elseif tv == "table" then
    encode_table(v, out, seen, depth, path)
  else
    error(path .. ": cannot carry a " .. tv .. " to the next worker process", 0)
  end
end

--- Encode v (see above); raises "path: reason" for what cannot be carried.
function M.encode(v)
  if v == nil then return "Z" end
  local out = {}
  encode_value(v, out, {}, 0, "state")
  return concat(out)
end

local decode_at

local function bad(s, i, what)
  error(fmt("reload state: %s at byte %d of %d", what, i, #s), 0)
end

decode_at = function(s, i, depth)
  local c = byte(s, i)
  if c == 84 then return true, i + 1            -- T
  elseif c == 70 then return false, i + 1       -- F
  elseif c == 73 then return huge, i + 1        -- I
  elseif c == 74 then return -huge, i + 1       -- J
  elseif c == 78 then return 0 / 0, i + 1       -- N
  elseif c == 110 then                          -- n
    local e = find(s, ";", i + 1, true)
    local x = e and tonumber(sub(s, i + 1, e - 1))
    if not x then bad(s, i, "bad number") end
    return x, e + 1
  elseif c == 115 then                          -- s
    local e = find(s, ":", i + 1, true)
    local len = e and tonumber(sub(s, i + 1, e - 1))
    if not len or len < 0 or e + len > #s then bad(s, i, "bad string") end
    return sub(s, e + 1, e + len), e + len + 1
  elseif c == 123 then                          -- {
    if depth > M.MAX_DEPTH then bad(s, i, "nested too deep") end
    local t = {}
    i = i + 1
    while byte(s, i) ~= 125 do
      if i > #s then bad(s, i, "unterminated table") end
      local k, v
      k, i = decode_at(s, i, depth + 1)
      if i > #s then bad(s, i, "key without value") end
      v, i = decode_at(s, i, depth + 1)
      if k ~= k then bad(s, i, "nan key") end
      t[k] = v
    end
    return t, i + 1
  end
  bad(s, i, "unexpected byte")
end

--- Decode bytes made by encode; raises "reload state: ..." on malformed input.
function M.decode(s)
  if s == "Z" then return nil end
  local v, i = decode_at(s, 1, 0)
  if i ~= #s + 1 then bad(s, i, "trailing bytes") end
  return v
end

function M.selftest()
  local function same(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then return a == b or (a ~= a and b ~= b) end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  local cases = {
    0, -0.5, 0.1, 2^53, 1e308, -1e-300, huge, -huge, true, false, "", "a\0b:{}s3:",
    { 1, 2, 3, n = { x = "y", [true] = false, [1.5] = { {} } } },
  }
  for _, v in ipairs(cases) do
    local back = M.decode(M.encode(v))
    assert(same(v, back), "round trip of " .. tostring(v))
  end
  assert(M.decode(M.encode(nil)) == nil)
  local nan = M.decode(M.encode(0 / 0))
  assert(nan ~= nan, "nan")
  for _, bad_v in ipairs { { f = print }, { co = coroutine.create(print) }, setmetatable({}, {}) } do
    local ok, err = pcall(M.encode, bad_v)
    assert(not ok and err:find("^state"), tostring(err))
  end
  local cyc = {}; cyc.self = cyc
  local ok, err = pcall(M.encode, cyc)
  assert(not ok and err:find("state.self", 1, true), tostring(err))
  local deep = {}
  local d = deep
  for _ = 1, M.MAX_DEPTH + 5 do d.x = {}; d = d.x end
  assert(not pcall(M.encode, deep), "too deep refused")
  for _, junk in ipairs { "", "{", "s5:ab", "n12", "{T}", "X", "TT", "{" .. ("{"):rep(200) } do
    local okd, errd = pcall(M.decode, junk)
    assert(not okd and errd:find("^reload state"), junk .. ": " .. tostring(errd))
  end
  print("divert.serial: selftest ok")
end

return M

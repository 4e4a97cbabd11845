--- divert.metrics: counters and gauges a policy exports, and the per-pipe
-- metrics of named shaping pipes.
--
--   local metrics = require "divert.metrics"
--   local blocked = metrics.counter("policy_blocked_total", { reason = "dns" })
--   local flows = metrics.gauge("policy_flows")
--   return function (pkt) blocked:inc(); flows:set(n); ... end
--
-- Every value lives in one FFI table (struct ld_metric_tables, core/ld_abi.h)
-- that the daemon gave the policy's Lua state (batch.metrics); the C side
-- reads it when /metrics is scraped or a report is written, without a lock
-- and without calling into Lua. Outside the daemon the module allocates its
-- own table, so the same policy runs anywhere. Creating a metric looks up or
-- takes a slot (not for the packet path); updating one is a store into FFI
-- memory: no allocation, compiled by the JIT (tests/lua/metrics_test.lua).
-- The same name and labels give the same slot, also after a reload, so
-- counters keep counting.
local ffi = require "divert.abi"
local bit = require "bit"

local M = {}

local C = ffi.C
local tables_ptr_t = ffi.typeof("struct ld_metric_tables *")
local NAME_MAX, LABELS_MAX = C.LD_NAME_MAX, C.LD_LABELS_MAX
local RING_MASK = C.LD_PIPE_RING - 1
local NBUCKETS = C.LD_DELAY_BUCKETS

-- Upper bounds (seconds) of the added-delay buckets; the last bucket is +Inf.
local DELAY_LE_S = { 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                     0.1, 0.2, 0.5, 1, 2, 5, 10 }
assert(#DELAY_LE_S == NBUCKETS - 1)

local T          -- struct ld_metric_tables * in use
local own        -- the table allocated here when no host gave one (kept alive)

local function fill_bounds(t)
	for i = 1, #DELAY_LE_S do t.delay_le_s[i - 1] = DELAY_LE_S[i] end
	t.delay_le_s[NBUCKETS - 1] = math.huge
end

--- Use the table at ptr (a struct ld_metric_tables * or a light userdata from
-- the host). Called by divert.host before the policy loads.
function M.attach(ptr)
	if ptr == nil then return end
	own = ptr        -- a table made in Lua must live as long as it is used
	T = ffi.cast(tables_ptr_t, ptr)
	fill_bounds(T)
end

--- The table in use (allocated on first use outside the daemon).
function M.tables()
	if not T then
		own = ffi.new("struct ld_metric_tables")
		T = own
		fill_bounds(T)
	end
	return T
end

local function check_name(name, what)
	if type(name) ~= "string" or not name:match("^[%a_:][%w_:]*$") then
		error(("divert.metrics.%s: name %s is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
		      :format(what, tostring(name)), 4)
	end
	if #name >= NAME_MAX then
		error(("divert.metrics.%s: name %q is longer than %d bytes"):format(what, name, NAME_MAX - 1), 4)
	end
end

-- Errors name the policy's line: level 4 is the caller of counter()/gauge().
-- Labels rendered once, sorted by key, values escaped as the text format wants.
local function render_labels(labels, what)
	if labels == nil then return "" end
	if type(labels) ~= "table" then
		error(("divert.metrics.%s: labels must be a table of name = value"):format(what), 4)
	end
	local keys = {}
	for k in pairs(labels) do
		if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or k:match("^__") then
			error(("divert.metrics.%s: label name %s is not valid"):format(what, tostring(k)), 4)
		end
		keys[#keys + 1] = k
	end
	table.sort(keys)
	local parts = {}
	for _, k in ipairs(keys) do
		local v = tostring(labels[k]):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"')
		parts[#parts + 1] = ('%s="%s"'):format(k, v)
	end
	local s = table.concat(parts, ",")
	if #s >= LABELS_MAX then
		error(("divert.metrics.%s: labels longer than %d bytes"):format(what, LABELS_MAX - 1), 4)
	end
	return s
end

local function user_slot(kind, name, labels, what)
	check_name(name, what)
	local ls = render_labels(labels, what)
	local t = M.tables()
	for i = 0, t.nuser - 1 do
		local u = t.user[i]
		if ffi.string(u.name) == name and ffi.string(u.labels) == ls then
			if u.kind ~= kind then
				error(("divert.metrics.%s: %q is already a %s"):format(what, name,
				      u.kind == C.LD_METRIC_COUNTER and "counter" or "gauge"), 3)
			end
			return u
		end
	end
	if t.nuser >= C.LD_USER_METRICS_MAX then
		error(("divert.metrics.%s: more than %d metrics"):format(what, C.LD_USER_METRICS_MAX), 3)
	end
	local u = t.user[t.nuser]
	ffi.fill(u, ffi.sizeof(u))
	ffi.copy(u.name, name)
	ffi.copy(u.labels, ls)
	u.kind = kind
	t.nuser = t.nuser + 1   -- published after the slot is filled
	return u
end

-- Methods of a metric (a struct ld_user_metric *): plain FFI stores.
local Metric = {}
Metric.__index = Metric

--- counter:inc([n]) adds n (default 1; counters only go up).
function Metric.inc(m, n)
	m.value = m.value + (n or 1)
end

--- gauge:set(v) sets the value.
function Metric.set(m, v)
	m.value = v
end

--- gauge:add(n) adds n (may be negative).
function Metric.add(m, n)
	m.value = m.value + n
end

--- metric:get() the current value.
function Metric.get(m)
	return m.value
end

ffi.metatype("struct ld_user_metric", Metric)

--- divert.metrics.counter(name, labels) -> counter with :inc([n]).
function M.counter(name, labels)
	return user_slot(C.LD_METRIC_COUNTER, name, labels, "counter")
end

--- divert.metrics.gauge(name, labels) -> gauge with :set(v), :add(n).
function M.gauge(name, labels)
	return user_slot(C.LD_METRIC_GAUGE, name, labels, "gauge")
end

--- The metrics slot of the pipe called name (shape.pipe{name = ...}), or
-- false when all LD_PIPES_MAX slots are taken (the pipe still works).
function M.pipe_slot(name)
	local t = M.tables()
	name = tostring(name):sub(1, NAME_MAX - 1)
	for i = 0, t.npipes - 1 do
		if ffi.string(t.pipes[i].name) == name then return t.pipes[i] end
	end
	if t.npipes >= C.LD_PIPES_MAX then return false end
	local p = t.pipes[t.npipes]
	ffi.fill(p, ffi.sizeof(p))
	ffi.copy(p.name, name)
	t.npipes = t.npipes + 1
	return p
end

local band = bit.band
assert(NBUCKETS == 16, "pipe_out's binary search is written for 16 buckets")
local bounds = ffi.new("double[?]", NBUCKETS)
for i = 1, #DELAY_LE_S do bounds[i - 1] = DELAY_LE_S[i] end
bounds[NBUCKETS - 1] = math.huge

--- Record one packet out of a pipe (hot path, called by divert.shape):
-- m the pipe's slot, added_ns the delay the pipe added, due_ns its release
-- time on the packet clock (ns).
function M.pipe_out(m, added_ns, due_ns)
	local s = added_ns * 1e-9
	-- The bucket: the first bound >= s, by binary search over the 16
	-- bounds (the last is +Inf). No loop: a loop here is a trace of its
	-- own, and entering it from a policy's trace boxes the pointers the
	-- policy holds (a per-packet allocation, seen with per-flow pipes on
	-- mixed traffic: tests/lua/alloc_jit_test.lua, scenario shape).
	local i = 0
	if s > bounds[i + 7] then i = i + 8 end
	if s > bounds[i + 3] then i = i + 4 end
	if s > bounds[i + 1] then i = i + 2 end
	if s > bounds[i] then i = i + 1 end
	m.delay_count[i] = m.delay_count[i] + 1
	m.delay_sum_s = m.delay_sum_s + s
	if added_ns > 0 then
		m.delayed = m.delayed + 1
		local h = m.ring_head
		m.ring[band(h, RING_MASK)] = due_ns
		m.ring_head = h + 1
	end
end

function M.selftest()
	local c = M.counter("selftest_total", { b = "2", a = 'x"y' })
	c:inc(); c:inc(2)
	assert(c.value == 3)
	assert(ffi.string(c.labels) == 'a="x\\"y",b="2"', ffi.string(c.labels))
	assert(M.counter("selftest_total", { a = 'x"y', b = "2" }) == c, "same name+labels, same slot")
	local g = M.gauge("selftest_g")
	g:set(5); g:add(-2)
	assert(g:get() == 3)
	assert(not pcall(M.gauge, "selftest_total", { b = "2", a = 'x"y' }), "kind clash")
	assert(not pcall(M.counter, "bad name"))
	local p = M.pipe_slot("up")
	M.pipe_out(p, 0, 0)
	M.pipe_out(p, 3e6, 1e9)
	assert(p.delay_count[0] == 1 and p.delay_count[4] == 1 and p.delayed == 1)
	assert(p.ring[0] == 1e9 and p.ring_head == 1)
	assert(M.pipe_slot("up") == p)
	-- the binary search finds the bucket a linear scan finds, at every bound
	local q = M.pipe_slot("selftest_buckets")
	for b = 0, NBUCKETS - 2 do
		for _, s in ipairs { bounds[b] * 0.999, bounds[b], bounds[b] * 1.001 } do
			local want = 0
			while s > bounds[want] do want = want + 1 end
			local before = q.delay_count[want]
			M.pipe_out(q, s * 1e9, 0)
			assert(q.delay_count[want] == before + 1, "bucket of " .. s)
		end
	end
end

return M

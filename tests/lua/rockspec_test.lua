-- The rockspec installs every Lua module: each lua/divert/*.lua and
-- lua/divert/*/*.lua file is in
-- its build.modules under the right module name, and nothing listed is
-- missing. (tests/integration/test_rockspec.sh really installs it.)
--   luajit tests/lua/rockspec_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"

local ROCKSPEC = "rockspec/luadivert-scm-1.rockspec"

local function load_rockspec()
	local env = {}
	local chunk = assert(loadfile(ROCKSPEC))
	setfenv(chunk, env)
	chunk()
	return env
end

local function lua_files()
	local files = {}
	local p = assert(io.popen("ls lua/divert/*.lua lua/divert/*/*.lua"))
	for f in p:lines() do files[#files + 1] = f end
	p:close()
	return files
end

T.check("the rockspec loads and is a builtin build", function ()
	local r = load_rockspec()
	T.eq(r.package, "luadivert"); T.eq(r.version, "scm-1"); T.eq(r.build.type, "builtin")
end)

T.check("every lua/divert/*.lua and */*.lua file is a module of the rockspec", function ()
	local mods = load_rockspec().build.modules
	local by_file = {}
	for name, file in pairs(mods) do by_file[file] = name end
	local files = lua_files()
	assert(#files > 0)
	for _, f in ipairs(files) do
		local want = f:match("^lua/(.-)%.lua$"):gsub("/", "."):gsub("%.init$", "")
		assert(by_file[f], f .. " is not in " .. ROCKSPEC)
		T.eq(by_file[f], want, f .. " module name")
	end
end)

T.check("every module the rockspec lists exists", function ()
	for name, file in pairs(load_rockspec().build.modules) do
		local fh = io.open(file)
		assert(fh, name .. ": " .. file .. " does not exist")
		fh:close()
	end
end)

T.done()

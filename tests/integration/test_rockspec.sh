#!/bin/sh
# The rockspec installs the library into a fresh tree, and a plain luajit
# loads it from there: `luarocks make` then `require "divert.ipv4"`.
# No root needed; exit 77 (skip) without luarocks or luajit.
set -u
cd "$(dirname "$0")/../.." || exit 1
command -v luarocks >/dev/null 2>&1 || { echo "SKIP: luarocks is not installed"; exit 77; }
command -v luajit >/dev/null 2>&1 || { echo "SKIP: luajit is not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

if ! luarocks make --tree "$tmp" rockspec/luadivert-scm-1.rockspec >"$tmp/make.log" 2>&1; then
	echo "FAIL: luarocks make"; cat "$tmp/make.log"; exit 1
fi
echo "ok - luarocks make into $tmp"

lp="$tmp/share/lua/5.1/?.lua;$tmp/share/lua/5.1/?/init.lua"
# Run from another directory, with no path to the source tree, so only the
# installed copy can be found.
cd "$tmp" || exit 1
export TREE="$tmp"
out=$(LUA_PATH="$lp;;" luajit -e '
	local ipv4 = require "divert.ipv4"
	assert(package.searchpath("divert.ipv4", package.path):find(os.getenv("TREE"), 1, true))
	local packet = require "divert.packet"
	local divert = require "divert"
	local pkt = packet.from_string(("4500001c000040004011000001020304050607080035003500080000"):gsub("..",
		function (h) return string.char(tonumber(h, 16)) end))
	assert(pkt:fix_checksums() and pkt:udp():dst_port() == 53 and divert.PASS == 1)
	for _, m in ipairs { "addr", "checksum", "flow", "icmp", "ipv6", "payload", "prefixset", "tcp", "udp", "view" } do
		require("divert." .. m).selftest()
	end
	print("loaded " .. package.searchpath("divert.ipv4", package.path))
' 2>&1) || { echo "FAIL: the installed library does not load"; echo "$out"; exit 1; }
echo "ok - $out"
exit 0

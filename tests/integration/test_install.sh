#!/bin/sh
# `make install` into a DESTDIR puts the binary, the Lua modules, the examples
# and the man page in place, and the installed binary finds its Lua library.
set -u
cd "$(dirname "$0")/../.." || exit 1
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fails=0
ok() { if "$@"; then echo "ok - $*"; else echo "not ok - $*"; fails=$((fails + 1)); fi; }

make -s install DESTDIR="$D" PREFIX=/usr/local >"$D.log" 2>&1 || { cat "$D.log"; rm -f "$D.log"; exit 1; }
rm -f "$D.log"
ok test -x "$D/usr/local/bin/luadivert"
ok test -f "$D/usr/local/share/lua/5.1/divert/packet.lua"
ok test -f "$D/usr/local/share/lua/5.1/divert/abi.lua"
ok test -f "$D/usr/local/share/man/man1/luadivert.1"
ok test -f "$D/usr/local/share/luadivert/examples/drop_dns.lua"
# the installed binary, moved under DESTDIR, finds ../share/lua/5.1 itself
out=$(env -u LUADIVERT_LUA_DIR "$D/usr/local/bin/luadivert" check \
	"$D/usr/local/share/luadivert/examples/drop_dns.lua" 2>&1)
ok test "$out" = "$D/usr/local/share/luadivert/examples/drop_dns.lua: ok"
[ "$fails" = 0 ] && echo "PASS: install" && exit 0
exit 1

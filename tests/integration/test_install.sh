#!/bin/sh
# `make install` into a DESTDIR puts the binary, the Lua modules, the examples
# and the man pages in place, and the installed binary finds its Lua library;
# the divert(4) library's header, .so and .pc build a C example.
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
# libluadivert-divert: header, library, pkg-config file, divert(4), C examples;
# a FreeBSD-style example builds against the installed tree through pkg-config
P="$D/usr/local"
ok test -f "$P/include/luadivert/divert.h"
ok test -f "$P/lib/libluadivert-divert.so.0"
ok test -L "$P/lib/libluadivert-divert.so"
ok test -f "$P/lib/pkgconfig/luadivert-divert.pc"
ok test -f "$P/share/man/man4/divert.4"
ok test -f "$P/share/luadivert/examples/c/divert_nat.c"
flags=$(PKG_CONFIG_PATH="$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" \
	pkg-config --cflags --libs luadivert-divert)
# shellcheck disable=SC2086
ok cc -o "$D/divert_nat" "$P/share/luadivert/examples/c/divert_nat.c" $flags
ok sh -c "readelf -d '$D/divert_nat' | grep -q 'NEEDED.*libluadivert-divert.so.0'"
# the installed binary, moved under DESTDIR, finds ../share/lua/5.1 itself
out=$(env -u LUADIVERT_LUA_DIR "$D/usr/local/bin/luadivert" check \
	"$D/usr/local/share/luadivert/examples/drop_dns.lua" 2>&1)
ok test "$out" = "$D/usr/local/share/luadivert/examples/drop_dns.lua: ok"
[ "$fails" = 0 ] && echo "PASS: install" && exit 0
exit 1

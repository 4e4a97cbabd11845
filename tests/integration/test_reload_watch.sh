#!/bin/sh
# --watch reloads for the policy and the modules it required, and for
# nothing else in their directories (issue 14, item 10): an editor's swap
# file, backup, vim's "4913" probe or an unrelated *.lua do not reload.
LDT_AREA=reload-watch
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
ldt_tmpdir
ns_create a; NS=$LDT_NS
D=$LDT_TMP/pol
mkdir -p "$D/lib"
printf 'return { v = 1 }\n' >"$D/lib/helper.lua"
printf 'return { v = 1 }\n' >"$D/unrelated.lua"
printf 'package.path = "%s/lib/?.lua;" .. package.path\nlocal h = require "helper"\nlocal d = require "divert"\nreturn function () return d.PASS end\n' "$D" >"$D/policy.lua"

reloads() { grep -c '^luadivert: reloaded' "$LD_LOG"; }

ld_start "$NS" "$D/policy.lua" --queue 0 --watch
# things an editor or a user leaves next to the policy
echo x >"$D/.policy.lua.swp"
echo x >"$D/policy.lua~"
echo x >"$D/4913"
printf 'return { v = 2 }\n' >"$D/unrelated.lua"
printf 'return {}\n' >"$D/lib/notrequired.lua"
sleep 0.5
check "swap, backup, probe and unrelated files do not reload ($(reloads))" [ "$(reloads)" = 0 ]

# the module the policy required, replaced by rename as editors do
printf 'return { v = 2 }\n' >"$D/lib/helper.new"
mv "$D/lib/helper.new" "$D/lib/helper.lua"
wait_until 5 sh -c "[ \$(grep -c '^luadivert: reloaded' '$LD_LOG') -ge 1 ]"
check "a change to a required module (another directory) reloads ($(reloads))" [ "$(reloads)" = 1 ]

# the policy itself, written in place
printf '\n' >>"$D/policy.lua"
wait_until 5 sh -c "[ \$(grep -c '^luadivert: reloaded' '$LD_LOG') -ge 2 ]"
check "a change to the policy reloads ($(reloads))" [ "$(reloads)" = 2 ]
echo y >"$D/.policy.lua.swp"
sleep 0.5
check "after the reload, still no reload for the swap file ($(reloads))" [ "$(reloads)" = 2 ]
ld_stop
ldt_done

#!/bin/sh
# `luadivert rules`: what `rules print` shows and the usage errors, without
# root and without touching any firewall. (The module's unit tests are
# tests/unit/rules_unit.c.)
LDT_AREA=rules-cli
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/rules.sh"
require_tools rules_driver
expect_rc() { _want=$1; shift; "$@" >/dev/null 2>&1; [ $? = "$_want" ]; }
if [ "$RULES_IMPL" = luadivert ]; then R="$LUADIVERT rules"; else R="$LDT_TOOLS/rules_driver rules"; fi
check "rules print: exit 0" expect_rc 0 $R print --filter 'udp dst port 53' --hook output
check "rules print: both families, the hook" \
	[ "$($R print --filter 'udp dst port 53' --hook output | grep -c -- '^-A OUTPUT -j LUADIVERT-Q0$')" = 2 ]
check "rules print: IPv6-only filter, no IPv4 rules" \
	[ "$($R print --filter icmp6 | grep -c '^# IPv4: no rules')" = 1 ]
check "rules print: --queue, --fail-closed" \
	[ "$($R print --queue 9 --fail-closed | grep -c -- '-j NFQUEUE --queue-num 9$')" = 2 ]
check "rules print: bad filter, exit 2" expect_rc 2 $R print --filter 'udp dts port 53'
check "rules: unknown subcommand, exit 2" expect_rc 2 $R frobnicate
check "rules: bad --hook, exit 2" expect_rc 2 $R print --hook sideways
check "rules: bad --queue, exit 2" expect_rc 2 $R cleanup --queue 70000
check "rules: bad --backend, exit 2" expect_rc 2 $R list --backend nftables
check "rules --help: exit 0" expect_rc 0 $R --help
ldt_done

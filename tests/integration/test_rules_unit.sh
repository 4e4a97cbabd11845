#!/bin/sh
# Unit tests of the divert-rules module (core/rules*.c) that need no root
# and touch no firewall: option parsing, the filter compiler, reading
# iptables-save text and the removal script, spawning without a shell, the
# queue lock. See tests/tools/rules_selftest.c.
LDT_AREA=rules-unit
. "$(dirname "$0")/../lib/netns.sh"
require_tools rules_selftest
"$LDT_TOOLS/rules_selftest" || fail "rules_selftest"
pass

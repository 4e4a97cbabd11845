#!/bin/sh
# Messages (issue 14, items 20 and 21): an unknown option or an option
# missing its value gives one message that names it (getopt's own second
# message is off), for every command; the start-up line about missing
# conntrack information says what it affects.
LDT_AREA=eng-msg
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
ldt_tmpdir
ns_create a; NS=$LDT_NS
POL=$LDT_ROOT/scripts/examples/pass_all.lua

# (run and rules go into the test's namespace: they exit at the option,
# but nothing of ours runs in the root namespace)
for cmd in "run $POL --bogus" "run $POL --queue" "check --bogus $POL" "reload --nope" \
	   "reload --timeout" "replay --nope a b" "rules list --nope"; do
	# shellcheck disable=SC2086
	ns_exec "$NS" "$LUADIVERT" $cmd >"$LDT_TMP/out" 2>"$LDT_TMP/err"
	RC=$?
	word=$(echo "$cmd" | awk '{ print $NF == "a" || $NF == "b" ? $2 : $NF }')
	[ "${cmd#replay}" != "$cmd" ] && word=--nope
	[ "${cmd#check}" != "$cmd" ] && word=--bogus
	check "'$cmd': usage error (exit $RC)" [ "$RC" = 2 ]
	check "'$cmd': one message naming $word" \
		[ "$(grep -c "unknown option or missing value: '$word'" "$LDT_TMP/err")" = 1 ]
	check "'$cmd': no second message from getopt" \
		sh -c '! grep -qE "unrecognized option|requires an argument|invalid option" "$0"' "$LDT_TMP/err"
done

ld_start "$NS" "$POL" --queue 0
ld_stop
if grep -q 'conntrack information' "$LD_LOG"; then
	check "the conntrack line says what it affects" \
		grep -q 'conntrack information.*ct_mark().*set_ct_mark()' "$LD_LOG"
else
	echo "# this kernel gives queues conntrack information: no line to check"
fi
ldt_done

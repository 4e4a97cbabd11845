# shellcheck shell=sh
# tests/lib/shape.sh - helpers for the shaping tests and bench/shape_precision.sh.
# Source after tests/lib/netns.sh (and ldt_tmpdir, for shape_policy).
#
#   shape_policy FILE 'OPTIONS'   write a policy applying shape.pipe{ OPTIONS } to every packet
#   within X LO HI                true when LO <= X <= HI (numbers, decimals allowed)
#   differ FILE1 FILE2            true when the files differ

shape_policy() {
	cat >"$1" <<LUA
local shape = require "divert.shape"
local pipe = shape.pipe{ $2 }
return function (pkt) return pipe(pkt) end
LUA
}

within() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "" && x >= lo && x <= hi) }'; }

differ() { ! cmp -s "$1" "$2"; }

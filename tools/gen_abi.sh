#!/bin/sh
# Copy the cdef-clean part of core/ld_abi.h into a Lua module, so that C and
# Lua can never disagree about a struct (the Snabb way). Run by the Makefile;
# the result is committed so that the rockspec installs it without a build.
set -eu
hdr=${1:-core/ld_abi.h}
echo "-- Generated from $hdr by tools/gen_abi.sh. Do not edit."
echo 'local ffi = require "ffi"'
echo 'ffi.cdef [['
sed -n '/^\/\* LD_ABI_BEGIN \*\/$/,/^\/\* LD_ABI_END \*\/$/p' "$hdr" | sed '1d;$d'
echo ']]'
echo 'return ffi'

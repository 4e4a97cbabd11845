#!/bin/sh
# Verdict sends fit the socket's real send buffer (issue 14, item 6). In a
# container SO_SNDBUFFORCE is refused and the buffer is what SO_SNDBUF and
# net.core.wmem_max give; LUADIVERT_SNDBUF emulates that (plain SO_SNDBUF,
# 64 KiB asked, 128 KiB given). Batches of datagrams grown by 20 KB are
# ~1.3 MB of verdicts: every one must reach the kernel (all arrive, grown).
LDT_AREA=eng-sndbuf
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; NS=$LDT_NS
N=400

iptables_ns "$NS" -A OUTPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
LUADIVERT_SNDBUF=65536
export LUADIVERT_SNDBUF
ld_start "$NS" "$LDT_ROOT/tests/policies/engine_grow.lua" --queue 0
unset LUADIVERT_SNDBUF
UDP_WAIT=5 udp_run "$NS" 127.0.0.1 9000 $N "$LDT_TMP/r.json" --rate 0 --size 64
ld_stop
check "all $N grown datagrams arrive (got $(json_get "$LDT_TMP/r.json" unique))" \
	[ "$(json_get "$LDT_TMP/r.json" unique)" = $N ]
check "they arrive grown ($(json_get "$LDT_TMP/r.json" bytes) bytes)" \
	[ "$(json_get "$LDT_TMP/r.json" bytes)" = $((N * 20064)) ]
check "no verdict send failed (send_errors $(ld_counter send_errors))" [ "$(ld_counter send_errors)" = 0 ]
check "modified counts every datagram" [ "$(ld_counter modified)" = $N ]
check "some batches were big enough to need splitting (batches $(ld_counter batches))" \
	[ "$(ld_counter batches)" -lt $N ]
check "exit status 0" [ "$LD_RC" = 0 ]
ldt_done

#!/bin/sh
# Payload rewrite, length change, mark, queue-to-N and duplicates on real UDP from
# namespace A to namespace B over a veth: B's kernel verifies the checksums of
# what it receives (a re-injected payload is CHECKSUM_NONE), so a wrong
# checksum shows up as a missing datagram and as UDP InCsumErrors.
LDT_AREA=eng-edit
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/engine.sh"
require_root
require_tools udpsend udprecv
ldt_tmpdir
ns_create a; A=$LDT_NS
ns_create b; B=$LDT_NS
veth_pair "$A" "$B" 0
N=1000
SIZE=100
UDP_SEND_NS=$A

csum_errors() { ns_exec "$B" awk '/^Udp:/ { n++; if (n == 2) print $8 }' /proc/net/snmp; }

# copies luadivert injects carry the skip mark: they must not be queued again
iptables_ns "$A" -A OUTPUT -p udp -d "$ADDR_B" -m mark ! --mark 0x4c440000/0x4c440000 \
	-j NFQUEUE --queue-num 0
iptables_ns "$A" -t mangle -A POSTROUTING -p udp --dport 9200 -m mark --mark 0x2a
ld_start "$A" "$LDT_ROOT/tests/policies/engine_edit.lua" --queue 0
LD0_PID=$LD_PID LD0_LOG=$LD_LOG
ld_start "$A" "$LDT_ROOT/scripts/examples/pass_all.lua" --queue 1
LD1_PID=$LD_PID LD1_LOG=$LD_LOG
E0=$(csum_errors)

UDP_RECV_ARGS="--dump-first $LDT_TMP/rewrite.hex" \
	udp_run "$B" "$ADDR_B" 9000 $N "$LDT_TMP/rewrite.json" --size $SIZE --payload-byte 0x61 --rate 20000
check "rewrite: all $N arrive" [ "$(json_get "$LDT_TMP/rewrite.json" unique)" = $N ]
# bytes 16..99 of the payload were 'a' (61) and must now be 'B' (42)
WANT=$(printf '42%.0s' $(seq 16 $((SIZE - 1))))
check "rewrite: the receiver sees the new bytes" [ "$(cut -c33- "$LDT_TMP/rewrite.hex")" = "$WANT" ]

UDP_RECV_ARGS="--dump-first $LDT_TMP/append.hex" \
	udp_run "$B" "$ADDR_B" 9100 $N "$LDT_TMP/append.json" --size $SIZE --payload-byte 0x61 --rate 20000
check "append: all $N arrive" [ "$(json_get "$LDT_TMP/append.json" unique)" = $N ]
check "append: each is 10 bytes longer" [ "$(json_get "$LDT_TMP/append.json" bytes)" = $((N * (SIZE + 10))) ]
check "append: the receiver sees ' luadivert' at the end" \
	[ "$(tail -c 21 "$LDT_TMP/append.hex")" = "206c7561646976657274" ]

udp_run "$B" "$ADDR_B" 9200 $N "$LDT_TMP/mark.json" --rate 20000
check "mark: all $N arrive" [ "$(json_get "$LDT_TMP/mark.json" unique)" = $N ]
MARKED=$(iptables_ns "$A" -t mangle -L POSTROUTING -v -n -x | awk '/mark match 0x2a/ { print $1 }')
check "mark: the -m mark rule after the queue counted $N (got $MARKED)" [ "$MARKED" = $N ]

udp_run "$B" "$ADDR_B" 9300 $N "$LDT_TMP/q1.json" --rate 20000
check "queue-to-1: all $N arrive" [ "$(json_get "$LDT_TMP/q1.json" unique)" = $N ]

UDP_RECV_ARGS="--count $((2 * N))" udp_run "$B" "$ADDR_B" 9400 $N "$LDT_TMP/dup.json" --rate 20000
check "duplicate: every datagram arrives" [ "$(json_get "$LDT_TMP/dup.json" unique)" = $N ]
check "duplicate: every datagram arrives twice ($(json_get "$LDT_TMP/dup.json" duplicates) duplicates)" \
	[ "$(json_get "$LDT_TMP/dup.json" duplicates)" = $N ]

check "no UDP checksum errors at the receiver" [ "$(csum_errors)" = "$E0" ]

LD_PID=$LD1_PID LD_LOG=$LD1_LOG; ld_stop
check "queue 1 received the $N packets sent to it" [ "$(ld_counter received)" = $N ]
LD_PID=$LD0_PID LD_LOG=$LD0_LOG; ld_stop
check "queue 0 modified 2N" [ "$(ld_counter modified)" = $((2 * N)) ]
check "queue 0 had no errors" [ "$(ld_counter errors)" = 0 ]
check "queue 0 injected N copies ($(ld_counter injected))" [ "$(ld_counter injected)" = $N ]
check "queue 0: none re-queued (received $(ld_counter received))" [ "$(ld_counter received)" = $((5 * N)) ]
ldt_done

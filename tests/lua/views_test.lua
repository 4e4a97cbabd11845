-- Known-answer tests: real packets (extracted from ../shared/pcaps, written
-- out as hex) read through the views, compared with what tcpdump -vvv says
-- about them.
--   luajit tests/lua/views_test.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./tests/lua/?.lua;" .. package.path
local T = require "testlib"
local ffi = require "ffi"
local packet = require "divert.packet"
local checksum = require "divert.checksum"
local addr = require "divert.addr"
local V = require "divert.view"

-- tcp-handshake-nano.pcap #1: 131.155.215.69.46656 > 137.116.81.94.80: Flags [S],
-- cksum 0x50c4, seq 797190859, win 27200,
-- options [mss 1360,sackOK,TS val 1131021154 ecr 0,nop,wscale 7]; ttl 64, id 10665, DF
local SYN = T.unhex(
	"4500003c29a940004006db5f839bd7458974515eb64000502f842acb00000000",
	"a0026a4050c40000020405500402080a436a03620000000001030307")

-- icmpv6.pcap #2: fe80::215:17ff:fecc:e546 > ff02::16: HBH (rtalert, padn)
-- ICMP6 multicast listener report v2 (type 143), hlim 1, payload length 36
local MLD = T.unhex(
	"6000000000240001fe80000000000000021517fffecce546ff02000000000000",
	"00000000000000163a000502000001008f001fc50000000104000000ff020000",
	"0000000000000db811223344")

-- ipv6-routing-header.pcap #4: 2200::244:212:3fff:feae:22f7 > 2200::211:2:0:0:2:
-- RT6 (type 0, segleft 2, [0]2200::210:2:0:0:4 [1]2200::240:2:0:0:4)
-- 5645 > 5642: [udp sum ok] UDP, length 0
local RT0 = T.unhex(
	"6000000000302b05220000000000024402123ffffeae22f72200000000000211",
	"0002000000000002110400020000000022000000000002100002000000000004",
	"22000000000002400002000000000004160d160a00082786")

-- icmp-rfc5837.pcap #1: 10.4.0.2 > 12.4.4.4: ICMP time exceeded in-transit,
-- quoting IP (ttl 1, id 42321, UDP, length 40) 12.4.4.4.42315 > 12.1.1.1.33440
local TIMEX = T.unhex(
	"450000f0e7204000fe017ade0a0400020c0404040b00ccff0000000045000028",
	"a55100000111f76a0c0404040c010101a54b82a0001400000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"000000000000000000000000000000000000000000000000000000002000246c",
	"0050020e0000000f000100000a0a0a0a40546869732d69732d7468652d6e616d",
	"652d6f662d7468652d496e746572666163652d746861742d77652d6172652d6c",
	"6f6f6b696e672d666f722d5b3a2d295d")

-- ipv6_frag6_negative_len.pcap: IPv6 fragment header, offset 1280 (a later
-- fragment), id 0x80000074, payload length 0 in the fixed header
local FRAG6 = T.unhex(
	"6500007300002c1c7fffffffc3b2a1021305008000382949967586dd7300002c",
	"1c7fffffffc3b2a1021305008000007480570f78ff020004")

-- ssh.pcap #48: 223.132.53.222.22 > 202.108.87.165.62146: Flags [.], cksum 0xe1f3,
-- win 340, options [14 x nop, sack 1 {4082238970:4082238971}]; tos 0x48, ttl 54
local SACK = T.unhex(
	"45480040e202400036062af9df8435deca6c57a50016f2c29257b836f352059a",
	"b0100154e1f300000101010101010101010101010101050af35205faf35205fb")

-- LINKTYPE_IPV6.pcap: 2001:db8::1.12345 > 2620:fe::9.53: [udp sum ok] A? example.com.
local UDP6 = T.unhex(
	"600000000025114020010db8000000000000000000000001262000fe00000000",
	"000000000000000930390035002598b312340100000100000000000007657861",
	"6d706c6503636f6d0000010001")

-- dns_udp.pcap #1: 192.168.1.11.43966 > 209.87.249.18.53: DNS query, id 22836
local DNS = T.unhex(
	"4500005459cd0000401194aec0a8010bd157f912abbe00350040782459340120",
	"0001000000000001037777770774637064756d70036f72670000010001000029",
	"100000000000000c000a000842f5d00996f90b13")

T.check("tcp syn: ip header", function ()
	local pkt = packet.from_string(SYN)
	local ip = assert(pkt:ipv4())
	T.eq(ip:ttl(), 64); T.eq(ip:id(), 10665); T.eq(ip:df(), true); T.eq(ip:total_len(), 60)
	T.eq(ip:protocol(), 6); T.eq(ip:src_str(), "131.155.215.69"); T.eq(ip:dst_str(), "137.116.81.94")
	T.eq(ip:checksum(), 0xdb5f); T.eq(ip:checksum_ok(), true); T.eq(ip:frag_offset(), 0)
	T.eq(pkt:ipv6(), nil); T.eq(pkt:udp(), nil)
end)

T.check("tcp syn: header and options", function ()
	local pkt = packet.from_string(SYN)
	local t = assert(pkt:tcp())
	T.eq(t:src_port(), 46656); T.eq(t:dst_port(), 80); T.eq(t:seq(), 797190859); T.eq(t:ack(), 0)
	T.eq(t:window(), 27200); T.eq(t:checksum(), 0x50c4); T.eq(t:hdr_len(), 40); T.eq(t:urgent(), 0)
	T.eq(t:syn(), true); T.eq(t:flag("ack"), false); T.eq(t:flags(), 0x02)
	T.eq(t:mss(), 1360); T.eq(t:sack_permitted(), true); T.eq(t:wscale(), 7); T.eq(t:sack_count(), 0)
	local val, ecr = t:timestamps(); T.eq(val, 1131021154); T.eq(ecr, 0)
	T.eq(t:checksum_ok(), true); T.eq(pkt:checksums_ok(), true)
	local _, n = pkt:payload(); T.eq(n, 0)
end)

T.check("tcp syn: MSS clamp and timestamp rewrite keep the checksum", function ()
	local pkt = packet.from_string(SYN)
	local t = pkt:tcp()
	assert(t:mss(1200)); assert(t:timestamps(1, 0xfffffffe)); assert(t:wscale(9))
	t:flag("ece", true); t:window(1000); t:ack(123456789); t:src_port(1)
	T.eq(t:mss(), 1200); T.eq(select(2, t:timestamps()), 0xfffffffe); T.eq(t:wscale(), 9)
	T.eq(pkt:checksums_ok(), true, "incremental updates")
	local want = checksum.l4(pkt:data(), 4, t.p, t.len, 6)
	T.eq(t:checksum(), want, "same as a full recompute")
	assert(bit.band(pkt.d.set, 4) ~= 0, "LD_SET_MODIFIED")
	-- NAT the source: IP header and TCP pseudo-header follow
	pkt:ipv4():src(addr.ip4("198.18.0.7"))
	T.eq(pkt:checksums_ok(), true, "after src rewrite")
end)

T.check("tcp sack block (14 NOPs before the option)", function ()
	local pkt = packet.from_string(SACK)
	local ip = pkt:ipv4()
	T.eq(ip:tos(), 0x48); T.eq(ip:dscp(), 18); T.eq(ip:ttl(), 54); T.eq(ip:id(), 57858)
	local t = assert(pkt:tcp())
	T.eq(t:src_port(), 22); T.eq(t:dst_port(), 62146); T.eq(t:window(), 340); T.eq(t:checksum(), 0xe1f3)
	T.eq(t:flags(), 0x10); T.eq(t:hdr_len(), 44); T.eq(t:checksum_ok(), true)
	T.eq(t:mss(), nil); T.eq(t:timestamps(), nil); T.eq(t:sack_permitted(), false)
	T.eq(t:sack_count(), 1); T.eq(t:option(5), 34); T.eq(select(2, t:option(5)), 10)
	local l, r = t:sack_block(1); T.eq(l, 4082238970); T.eq(r, 4082238971); T.eq(t:sack_block(2), nil)
	assert(t:sack_block(1, 1, 0xffffffff))
	l, r = t:sack_block(1); T.eq(l, 1); T.eq(r, 0xffffffff); T.eq(pkt:checksums_ok(), true)
end)

T.check("ipv6 first fragment: transport header readable, checksum not checkable", function ()
	-- UDP6 with a fragment header (offset 0, more fragments) spliced in
	local frag = T.unhex("110000012e5bc0de")             -- next UDP, offset 0, M=1, id 0x2e5bc0de
	local s = UDP6:sub(1, 4) .. string.char(0, 37 + 8, 44) .. UDP6:sub(8, 40) .. frag .. UDP6:sub(41)
	local pkt = packet.from_string(s)
	local ip = assert(pkt:ipv6())
	T.eq(ip:is_fragment(), true); T.eq(ip:frag_offset(), 0); T.eq(ip:mf(), true); T.eq(ip:frag_id(), 0x2e5bc0de)
	T.eq(ip:ext(44), 40); T.eq(ip:protocol(), 17)
	local u = assert(pkt:udp())
	T.eq(u:src_port(), 12345); T.eq(u:dst_port(), 53); T.eq(u:length(), 37)
	T.eq(u:checksum_ok(), nil); T.eq(select(2, pkt:fix_checksums()), "fragment")
end)

T.check("icmpv6 packet too big quoting an ipv6/udp packet", function ()
	-- 2620:fe::9 > 2001:db8::1: ICMP6 packet too big, mtu 1280, quoting UDP6
	local outer = T.unhex("60000000", "0000", "3a40", "262000fe000000000000000000000009",
		"20010db8000000000000000000000001")
	local body = T.unhex("02000000", "00000500") .. UDP6
	local s = outer:sub(1, 4) .. string.char(0, #body) .. outer:sub(7) .. body
	local pkt = packet.from_string(s)
	assert(pkt:fix_checksums())
	local ic = assert(pkt:icmpv6())
	T.eq(ic:type(), 2); T.eq(ic:is_error(), true); T.eq(ic:mtu(), 1280); T.eq(ic:checksum_ok(), true)
	local inner = assert(ic:inner())
	T.eq(inner:version(), 6); T.eq(inner:src_str(), "2001:db8::1"); T.eq(inner:protocol(), 17)
	local sp, dp = ic:inner_ports(); T.eq(sp, 12345); T.eq(dp, 53)
	T.eq(pkt:icmp(), nil)
end)

T.check("ipv6 hop-by-hop + icmpv6 (MLDv2 report)", function ()
	local pkt = packet.from_string(MLD)
	local ip = assert(pkt:ipv6())
	T.eq(ip:hop_limit(), 1); T.eq(ip:payload_len(), 36); T.eq(ip:next_header(), 0)
	T.eq(ip:src_str(), "fe80::215:17ff:fecc:e546"); T.eq(ip:dst_str(), "ff02::16")
	T.eq(ip:ext_count(), 1); T.eq(ip:ext(0), 40); T.eq(select(2, ip:ext(0)), 8)
	T.eq(ip:protocol(), 58); T.eq(ip:hdr_len(), 48); T.eq(ip:l4_error(), nil)
	local ic = assert(pkt:icmpv6())
	T.eq(ic:type(), 143); T.eq(ic:code(), 0); T.eq(ic:checksum(), 0x1fc5); T.eq(ic:is_error(), false)
	T.eq(ic:checksum_ok(), true); T.eq(pkt:icmp(), nil)
	ip:hop_limit(255); ic:code(1)
	T.eq(pkt:checksums_ok(), true)
end)

T.check("ipv6 routing header: pseudo-header uses the final destination", function ()
	local pkt = packet.from_string(RT0)
	local ip = assert(pkt:ipv6())
	T.eq(ip:ext_count(), 1); T.eq(ip:ext(43), 40); T.eq(select(2, ip:ext(43)), 40)
	T.eq(ip:dst_str(), "2200::211:2:0:0:2")
	T.eq(addr.format6(ip.p + ip.dstoff), "2200::240:2:0:0:4")
	local u = assert(pkt:udp())
	T.eq(u:src_port(), 5645); T.eq(u:dst_port(), 5642); T.eq(u:length(), 8); T.eq(u:checksum(), 0x2786)
	T.eq(u:checksum_ok(), true)
	-- rewriting the in-transit dst must not touch the UDP checksum
	ip:dst("2200::99"); T.eq(u:checksum(), 0x2786); T.eq(pkt:checksums_ok(), true)
	ip:src("2001:db8::1"); T.eq(pkt:checksums_ok(), true)
	assert(pkt:fix_checksums()); T.eq(pkt:udp():checksum_ok(), true)
end)

T.check("icmp time exceeded quoting a udp packet", function ()
	local pkt = packet.from_string(TIMEX)
	local ip = assert(pkt:ipv4())
	T.eq(ip:ttl(), 254); T.eq(ip:total_len(), 240); T.eq(ip:src_str(), "10.4.0.2")
	local ic = assert(pkt:icmp())
	T.eq(ic:type(), 11); T.eq(ic:code(), 0); T.eq(ic:is_error(), true); T.eq(ic:checksum_ok(), true)
	local inner = assert(ic:inner())
	T.eq(inner:ttl(), 1); T.eq(inner:id(), 42321); T.eq(inner:protocol(), 17); T.eq(inner:total_len(), 40)
	T.eq(inner:src_str(), "12.4.4.4"); T.eq(inner:dst_str(), "12.1.1.1"); T.eq(inner:checksum_ok(), true)
	local sp, dp = ic:inner_ports(); T.eq(sp, 42315); T.eq(dp, 33440)
	-- NAT of an ICMP error: rewrite the quoted address, then fix the ICMP sum
	inner:src(addr.ip4("198.18.0.1"))
	-- the quoted header's own checksum compensates, so the ICMP sum holds
	T.eq(inner:checksum_ok(), true); T.eq(ic:checksum_ok(), true)
	inner:ttl(9); ffi.fill(inner.p + 20 + 8, 4, 0x55)   -- quoted UDP payload bytes
	T.eq(ic:checksum_ok(), false)
	assert(pkt:fix_checksums()); T.eq(pkt:checksums_ok(), true)
end)

T.check("ipv6 later fragment: no transport header", function ()
	local pkt = packet.from_string(FRAG6)
	local ip = assert(pkt:ipv6())
	T.eq(ip:is_fragment(), true); T.eq(ip:frag_offset(), 1280); T.eq(ip:frag_id(), 0x80000074)
	T.eq(ip:mf(), false); T.eq(ip:flow_label(), 0x73); T.eq(ip:traffic_class(), 0x50)
	T.eq(ip:hop_limit(), 28); T.eq(ip:payload_len(), 0)
	local t, why = pkt:tcp(); T.eq(t, nil); T.eq(why, "fragment")
	T.eq(select(2, pkt:payload()), 8)
	local ok, why2 = pkt:fix_checksums(); T.eq(ok, nil); T.eq(why2, "fragment")
end)

T.check("ipv4 fragments made from a real dns query", function ()
	-- split DNS (64 bytes of UDP) into 24 + 40 bytes: offsets in 8-byte units
	local ip_hdr, l4 = DNS:sub(1, 20), DNS:sub(21)
	local function frag(data, off, mf)
		local h = ffi.new("uint8_t[20]"); ffi.copy(h, ip_hdr, 20)
		V.wr16(h, 2, 20 + #data); V.wr16(h, 6, (mf and 0x2000 or 0) + off / 8)
		V.wr16(h, 10, checksum.ipv4_header(h))
		return ffi.string(h, 20) .. data
	end
	local first = packet.from_string(frag(l4:sub(1, 24), 0, true))
	local second = packet.from_string(frag(l4:sub(25), 24, false))
	local ip1 = first:ipv4()
	T.eq(ip1:mf(), true); T.eq(ip1:is_fragment(), true); T.eq(ip1:frag_offset(), 0); T.eq(ip1:checksum_ok(), true)
	local u = assert(first:udp(), "the first fragment carries the UDP header")
	T.eq(u:src_port(), 43966); T.eq(u:dst_port(), 53); T.eq(u:length(), 64)
	T.eq(u:checksum_ok(), nil, "cannot check a checksum spread over fragments")
	T.eq(select(2, first:fix_checksums()), "fragment")
	local ip2 = second:ipv4()
	T.eq(ip2:frag_offset(), 24); T.eq(ip2:mf(), false)
	T.eq(second:udp(), nil); T.eq(select(2, second:udp()), "fragment")
	T.eq(select(2, second:payload()), 40)
end)

T.check("dns over udp: payload matching", function ()
	local payload = require "divert.payload"
	local pkt = packet.from_string(DNS)
	local p, n = pkt:payload()
	T.eq(n, 56); T.eq(payload.find(p, n, "\3www\7tcpdump\3org\0"), 12)
	T.eq(pkt:udp():checksum_ok(), true)
	T.eq(payload.replace(pkt, "tcpdump", "example"), 1)
	T.eq(pkt:checksums_ok(), true)
end)

T.check("csum-not-ready: field holds the pseudo-header sum; first write completes it", function ()
	-- a CHECKSUM_PARTIAL packet as the kernel queues it: the TCP checksum
	-- field holds the folded pseudo-header sum (as in ../shared/pcaps/gso-*)
	local pkt = packet.from_string(SYN)
	local t = pkt:tcp()
	local ip = pkt:ipv4()
	local ps = checksum.pseudo4(ip.p, 6, t.len)
	t:checksum(ps)
	pkt.d.flags = 2 + 1   -- LD_PKT_CSUM_NOTREADY | LD_PKT_GSO
	pkt.d.set = 0
	T.eq(pkt:csum_notready(), true); T.eq(pkt:gso(), true)
	T.eq(pkt:checksums_ok(), nil, "not checkable while not ready")
	pkt:tcp():dst_port(8080)
	assert(bit.band(pkt.d.set, 4) ~= 0)
	pkt.d.flags = 0
	T.eq(pkt:checksums_ok(), true, "complete and valid after the first write")
end)

T.check("csum-not-ready: fix_checksums writes the complete checksum", function ()
	local pkt = packet.from_string(DNS)
	local u = pkt:udp()
	u:checksum(checksum.pseudo4(pkt:data(), 17, u.len))
	pkt.d.flags = 2
	assert(pkt:fix_checksums())
	pkt.d.flags = 0
	T.eq(pkt:checksums_ok(), true)
end)

T.check("csum-not-ready GSO captures: the field is the pseudo-header sum", function ()
	local pf = require "pcapfile"
	local seen = 0
	for _, name in ipairs { "gso-ipv4.pcap", "gso-ipv6.pcap", "bigtcp-ipv4.pcap", "bigtcp-ipv6-hbh.pcap" } do
		local path = pf.DIR .. "/" .. name
		local fh = io.open(path, "rb")
		if fh then
			fh:close()
			for r in pf.records(path) do
				local pkt = packet.from_string(r.ip)
				local ip = assert(pkt:ip())
				local t = assert(pkt:tcp())
				local ps = ip.ipver == 4 and checksum.pseudo4(ip.p, 6, t.len) or checksum.pseudo6(ip.p, 6, t.len, ip.dstoff)
				T.eq(t:checksum(), ps, name)
				-- bigger than the MTU, some bigger than 64 KiB: a full checksum
				pkt.d.flags = 3
				assert(pkt:fix_checksums()); pkt.d.flags = 0
				T.eq(pkt:checksums_ok(), true, name .. " after fix")
				seen = seen + 1
			end
		end
	end
	if seen == 0 then print("     (no captures in " .. pf.DIR .. ": skipped)") end
end)

T.check("metadata accessors on a descriptor", function ()
	local d = ffi.new("struct ld_packet")
	local buf = ffi.new("uint8_t[80]"); ffi.copy(buf, SYN, #SYN)
	d.data = buf; d.len = #SYN; d.cap = 80; d.orig_len = #SYN; d.id = 42; d.mark = 7; d.hook = 1
	d.hw_proto = 0x0800; d.indev = 1; d.outdev = 0; d.tstamp_ns = 123456789; d.uid = 1000; d.gid = 100
	d.ct_mark = 5; d.ct_info = 2; d.flags = 8
	local pkt = packet.new()
	assert(pkt:attach(d) == pkt)
	T.eq(pkt:id(), 42); T.eq(pkt:mark(), 7); T.eq(pkt:hook(), 1); T.eq(pkt:hw_proto(), 0x0800)
	T.eq(pkt:indev(), 1); T.eq(pkt:outdev(), 0); T.eq(pkt:outdev_name(), nil); T.eq(pkt:time(), 123456789)
	T.eq(pkt:indev_name(), "lo"); T.eq(pkt:uid(), 1000); T.eq(pkt:gid(), nil); T.eq(pkt:ct_mark(), nil)
	d.flags = 8 + 16 + 32
	T.eq(pkt:gid(), 100); T.eq(pkt:ct_mark(), 5); T.eq(pkt:ct_info(), 2)
	T.eq(pkt:len(), 60); T.eq(pkt:orig_len(), 60); T.eq(pkt:truncated(), false)
	assert(pkt:data() == buf)
	pkt:set_mark(0xffffffff); pkt:set_ct_mark(9); pkt:hold(2.5); pkt:duplicate(3)
	T.eq(d.new_mark, 0xffffffff); T.eq(d.new_ct_mark, 9); assert(d.hold_ns == 2500000); T.eq(d.dup, 3)
	T.eq(d.set, 1 + 2 + 8)
	-- grow, append, shrink within cap
	assert(pkt:append("abcd")); T.eq(pkt:len(), 64); T.eq(buf[60], 97)
	assert(pkt:resize(70)); T.eq(buf[69], 0)
	local ok, err = pkt:resize(81); T.eq(ok, nil); T.eq(err, "too big")
	T.eq(pkt:append(string.rep("x", 20)), nil)
	assert(pkt:resize(60)); assert(pkt:tcp())
	T.eq(d.set, 1 + 2 + 4 + 8)
	-- misuse is an error at the caller
	for _, f in ipairs { function () pkt:set_mark(-1) end, function () pkt:hold(-1) end,
		function () pkt:duplicate(1.5) end, function () pkt:resize("x") end,
		function () pkt:append({}) end, function () pkt:tcp():ttl() end } do
		assert(not pcall(f))
	end
	-- attach another descriptor: views follow
	local d2 = ffi.new("struct ld_packet")
	local b2 = ffi.new("uint8_t[?]", #DNS); ffi.copy(b2, DNS, #DNS)
	d2.data = b2; d2.len = #DNS; d2.cap = #DNS
	pkt:attach(d2)
	T.eq(pkt:tcp(), nil); T.eq(pkt:udp():dst_port(), 53)
end)

T.check("a packet the kernel truncated has no computable transport checksum", function ()
	local pkt = packet.from_string(SYN)
	pkt.d.flags = 64                      -- LD_PKT_TRUNCATED
	pkt.d.orig_len = 70000
	T.eq(pkt:truncated(), true); T.eq(pkt:tcp():checksum_ok(), nil)
	local ok, why = pkt:fix_checksums(); T.eq(ok, nil); T.eq(why, "truncated")
	T.eq(pkt:ipv4():checksum_ok(), true, "the IP header checksum is still fixed")
end)

T.check("set_payload grows a udp packet and fixes lengths and checksums", function ()
	local pkt = packet.from_string(DNS, 1500)
	assert(pkt:set_payload(string.rep("z", 1000)))
	T.eq(pkt:len(), 1028); T.eq(pkt:ipv4():total_len(), 1028); T.eq(pkt:udp():length(), 1008)
	T.eq(pkt:checksums_ok(), true)
	assert(pkt:set_payload(""))
	T.eq(pkt:len(), 28); T.eq(pkt:checksums_ok(), true)
end)

T.check("standalone views keep working across garbage collection", function ()
	-- structs point at the dummy owner of standalone views with raw pointers;
	-- it must stay alive however often the GC runs
	for _ = 1, 3 do
		for _ = 1, 200 do packet.from_string(SYN) end   -- garbage with finalizers
		collectgarbage("collect"); collectgarbage("collect")
		local b = ffi.new("uint8_t[?]", #SYN); ffi.copy(b, SYN, #SYN)
		local t = require("divert.tcp").view(b + 20, #SYN - 20, b, 4)
		V.dummy_desc.flags = 0; V.dummy_desc.set = 0
		t:dst_port(8080); t:mss(1200)
		T.eq(t:checksum_ok(), true); T.eq(V.dummy_desc.set, 4)
		assert(V.dummy_pkt.d == ffi.cast("struct ld_packet *", V.dummy_desc))
	end
end)

T.check("every selftest, three times in one process, with full GCs between", function ()
	for _ = 1, 3 do
		for _, m in ipairs { "addr", "checksum", "flow", "icmp", "ipv4", "ipv6", "packet", "payload",
				"prefixset", "tcp", "udp", "view" } do
			require("divert." .. m).selftest()
			collectgarbage("collect")
		end
	end
end)

T.done()

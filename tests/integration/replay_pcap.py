#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""replay_pcap.py - capture files for the `luadivert replay` tests.

Reads pcap (micro- and nanosecond, either byte order) and pcapng (SHB, IDB,
EPB, SPB, OPB; if_tsresol), writes pcap, and builds the small IPv4/IPv6 frames
the tests need, with valid checksums. No third-party module.

As a program:
  replay_pcap.py same A B        exit 0 when A and B hold the same records
                                 (timestamps, lengths, bytes), else print the
                                 first difference and exit 1
  replay_pcap.py dump FILE       one line per record: ts_ns caplen len hex
"""
import struct
import sys

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_RAW = 0, 1, 9, 101
LINKTYPE_LOOP, LINKTYPE_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6 = 108, 113, 228, 229
LINKTYPE_SLL2 = 276

# Addresses of the test packets: the benchmarking range, and a ULA.
SRC4, DST4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SRC6 = bytes.fromhex("fd000198001800000000000000000001")
DST6 = bytes.fromhex("fd000198001800000000000000000002")


class Capture:
    def __init__(self, linktype, snaplen, nano, records):
        self.linktype = linktype
        self.snaplen = snaplen
        self.nano = nano            # True when the file has sub-microsecond stamps
        self.records = records      # [(ts_ns, wirelen, bytes)]


def _read_pcap(b):
    magic = struct.unpack("<I", b[:4])[0]
    if magic in (0xa1b2c3d4, 0xa1b23c4d):
        e = "<"
    else:
        e = ">"
        magic = struct.unpack(">I", b[:4])[0]
    nano = magic == 0xa1b23c4d
    _, _, _, _, snaplen, linktype = struct.unpack(e + "HHiIII", b[4:24])
    recs, off = [], 24
    while off + 16 <= len(b):
        sec, frac, caplen, wirelen = struct.unpack(e + "IIII", b[off:off + 16])
        data = b[off + 16:off + 16 + caplen]
        if len(data) < caplen:
            raise ValueError("truncated record %d" % (len(recs) + 1))
        recs.append((sec * 10**9 + (frac if nano else frac * 1000), wirelen, data))
        off += 16 + caplen
    if off != len(b):
        raise ValueError("trailing bytes after record %d" % len(recs))
    return Capture(linktype & 0x0fffffff, snaplen, nano, recs)


def _read_pcapng(b):
    e = "<" if struct.unpack("<I", b[8:12])[0] == 0x1a2b3c4d else ">"
    ifaces, recs, off = [], [], 0     # ifaces: (linktype, snaplen, ns per tick or None, ticks/s)
    while off + 12 <= len(b):
        btype, blen = struct.unpack(e + "II", b[off:off + 8])
        body = b[off + 8:off + blen - 4]
        if btype == 0x0a0d0d0a:
            e = "<" if struct.unpack("<I", b[off + 8:off + 12])[0] == 0x1a2b3c4d else ">"
            ifaces = []
        elif btype == 1:
            linktype, _, snaplen = struct.unpack(e + "HHI", body[:8])
            per_sec = 10**6
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(e + "HH", body[o:o + 4])
                if code == 0:
                    break
                if code == 9:
                    r = body[o + 4]
                    per_sec = 2 ** (r & 0x7f) if r & 0x80 else 10 ** r
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, snaplen, per_sec))
        elif btype in (6, 2):
            if btype == 6:
                ifid, hi, lo, caplen, wirelen = struct.unpack(e + "IIIII", body[:20])
                data = body[20:20 + caplen]
            else:
                ifid, _, hi, lo, caplen, wirelen = struct.unpack(e + "HHIIII", body[:20])
                data = body[20:20 + caplen]
            per_sec = ifaces[ifid][2]
            ticks = hi << 32 | lo
            recs.append((ticks * 10**9 // per_sec, wirelen, data))
        elif btype == 3:
            wirelen = struct.unpack(e + "I", body[:4])[0]
            caplen = min(wirelen, ifaces[0][1] or wirelen)
            recs.append((0, wirelen, body[4:4 + caplen]))
        off += blen
    lt, snap, per_sec = ifaces[0] if ifaces else (1, 262144, 10**6)
    return Capture(lt, snap, per_sec > 10**6, recs)


def read(path):
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(b)
    return _read_pcap(b)


def write(path, linktype, records, nano=False, snaplen=65535):
    """records: [(ts_ns, bytes)] or [(ts_ns, bytes, wirelen)]."""
    out = [struct.pack("<IHHiIII", 0xa1b23c4d if nano else 0xa1b2c3d4, 2, 4, 0, 0,
                       snaplen, linktype)]
    for r in records:
        ts, data = r[0], r[1]
        wirelen = r[2] if len(r) > 2 else len(data)
        frac = ts % 10**9 if nano else ts % 10**9 // 1000
        out.append(struct.pack("<IIII", ts // 10**9, frac, len(data), wirelen))
        out.append(bytes(data))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4_udp(src, dst, sport, dport, payload, ident=1, ttl=64):
    """An IPv4/UDP packet with both checksums right; addresses as 4-byte strings."""
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    uc = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident, 0, ttl, 17, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + udp


def ipv6_udp(src, dst, sport, dport, payload, hlim=64):
    """An IPv6/UDP packet; addresses as 16-byte strings."""
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!I3xB", ulen, 17)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    uc = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    return struct.pack("!IHBB16s16s", 0x60000000, ulen, 17, hlim, src, dst) + udp


def ether(payload, ethertype, tags=()):
    """An Ethernet frame; tags: [(tpid, vid)] outermost first."""
    h = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for tpid, vid in tags:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", ethertype) + payload


def _same(a, b):
    try:
        ca, cb = read(a), read(b)
    except (OSError, ValueError, struct.error, IndexError) as e:
        return "cannot read: %s" % e
    if ca.linktype != cb.linktype:
        return "link types differ: %d and %d" % (ca.linktype, cb.linktype)
    if len(ca.records) != len(cb.records):
        return "%d records and %d" % (len(ca.records), len(cb.records))
    for i, (ra, rb) in enumerate(zip(ca.records, cb.records)):
        if ra != rb:
            return "record %d differs: ts %d/%d len %d/%d caplen %d/%d bytes %s" % (
                i + 1, ra[0], rb[0], ra[1], rb[1], len(ra[2]), len(rb[2]),
                "equal" if ra[2] == rb[2] else "differ")
    return None


def main(argv):
    if len(argv) == 4 and argv[1] == "same":
        diff = _same(argv[2], argv[3])
        if diff:
            print("%s vs %s: %s" % (argv[2], argv[3], diff))
            return 1
        return 0
    if len(argv) == 3 and argv[1] == "dump":
        for ts, wirelen, data in read(argv[2]).records:
            print(ts, len(data), wirelen, data.hex())
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

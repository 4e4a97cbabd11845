#!/usr/bin/env python3
"""pcapng_comments.py FILE...: one line per packet of pcapng files, read
with a reader independent of luadivert's writer (block by block, as the
pcapng spec lays them out):

    <ts_ns> <captured_len> <dst_port or -> <epb_flags direction> <comment>

Exits 1 on a malformed file (bad block length, trailer, byte-order magic)."""
import struct
import sys


def options(buf):
    off = 0
    while off + 4 <= len(buf):
        code, length = struct.unpack_from("<HH", buf, off)
        if code == 0:
            return
        yield code, buf[off + 4:off + 4 + length]
        off += 4 + length + (-length % 4)


def packets(path):
    data = open(path, "rb").read()
    off, tsres = 0, 6
    while off < len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            sys.exit(f"{path}: bad block length {blen} at {off}")
        if struct.unpack_from("<I", data, off + blen - 4)[0] != blen:
            sys.exit(f"{path}: block trailer differs at {off}")
        body = data[off + 8:off + blen - 4]
        if btype == 0x0A0D0D0A:
            if struct.unpack_from("<I", body, 0)[0] != 0x1A2B3C4D:
                sys.exit(f"{path}: byte-order magic")
        elif btype == 1:
            for code, val in options(body[8:]):
                if code == 9:
                    tsres = val[0]
        elif btype == 6:
            _, hi, lo, caplen, _ = struct.unpack_from("<IIIII", body, 0)
            pkt = body[20:20 + caplen]
            comment, flags = "", 0
            for code, val in options(body[20 + caplen + (-caplen % 4):]):
                if code == 1:
                    comment = val.decode()
                elif code == 2:
                    flags = struct.unpack("<I", val)[0]
            ts = (hi << 32 | lo) * (10 ** (9 - tsres))
            port = "-"
            if len(pkt) >= 28 and pkt[0] >> 4 == 4 and pkt[9] == 17:
                ihl = (pkt[0] & 15) * 4
                port = struct.unpack_from(">H", pkt, ihl + 2)[0]
            yield ts, caplen, port, flags & 3, comment
        off += blen


for f in sys.argv[1:]:
    for p in packets(f):
        print(*p)

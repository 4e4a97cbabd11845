#!/usr/bin/env python3
"""offload_tcp.py: one TCP connection in two phases, for test_offload.sh.

  offload_tcp.py ADDR PORT BYTES1 BYTES2 DIR

A receiver thread accepts one connection and hashes what arrives; the
sender sends BYTES1 pseudo-random bytes, writes DIR/phase1 once the receiver
has them all, waits (at most 20 s) for DIR/go, sends BYTES2 more on the SAME
connection and closes. The receiver prints a JSON line with the byte count
and the SHA-256 of what it received and of what was sent. Everything is
bounded: 30 s socket timeouts, 20 s waits.
"""
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

addr, port, n1, n2, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
rng = random.Random(16)
data = bytes(rng.getrandbits(8) for _ in range(4096)) * ((n1 + n2) // 4096 + 1)
data = data[:n1 + n2]
got = {"n": 0, "h": hashlib.sha256()}
lsock = socket.socket(fam, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind((addr, port))
lsock.listen(1)
lsock.settimeout(30)


def receive():
    c, _ = lsock.accept()
    c.settimeout(30)
    while True:
        b = c.recv(65536)
        if not b:
            break
        got["h"].update(b)
        got["n"] += len(b)
    c.close()


def wait_for(cond, limit):
    end = time.time() + limit
    while not cond():
        if time.time() > end:
            sys.exit("offload_tcp: timed out")
        time.sleep(0.01)


t = threading.Thread(target=receive)
t.start()
s = socket.create_connection((addr, port), timeout=30)
s.sendall(data[:n1])
wait_for(lambda: got["n"] >= n1, 20)
open(os.path.join(d, "phase1"), "w").close()
wait_for(lambda: os.path.exists(os.path.join(d, "go")), 20)
s.sendall(data[n1:])
s.close()
t.join(30)
print(json.dumps({"received": got["n"], "hash": got["h"].hexdigest(),
                  "sent_hash": hashlib.sha256(data).hexdigest()}))

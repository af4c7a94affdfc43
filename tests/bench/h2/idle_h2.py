"""Memory per idle HTTP/2 connection: opens N cleartext HTTP/2
connections (prior knowledge) to a running amped, one GET each, reads
the answers, leaves them open, and prints the growth of the server's
resident memory divided by N.

Usage: python3 tests/bench/h2/idle_h2.py PORT SERVER_PID N
(start the server with --max-connections above N, and raise the file
descriptor limit, `ulimit -n`, above N.)
"""
import socket
import struct
import sys
import time

import hpack

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def rss_kib():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit("no such process")


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


before = rss_kib()
conns = []
for _ in range(n):
    sock = socket.create_connection(("127.0.0.1", port))
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                    (":path", "/index.html"), (":authority", "localhost")])
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(1, 5, 1, block))
    conns.append(sock)
time.sleep(1)
for sock in conns:
    sock.setblocking(False)
    try:
        sock.recv(1 << 16)
    except BlockingIOError:
        pass
time.sleep(1)
after = rss_kib()
print(f"{n} idle HTTP/2 connections: RSS {before} -> {after} KiB, "
      f"{(after - before) * 1024 / n:.0f} bytes each")

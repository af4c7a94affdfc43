#!/usr/bin/env python3
# Idle keep-alive clients for tests/bench/idle.sh.
"""Opens N keep-alive connections to 127.0.0.1:PORT; on each, sends one
`GET PATH HTTP/1.1` and reads the whole response (a 200 with a
Content-Length body), then leaves the connection open and idle. Prints
`READY N` on stdout once every connection has had its response, then
holds them all until stdin reaches end-of-file (or a line arrives) or
`--hold` seconds pass, and closes them. Exits 1 if any connection fails
or a response is not a complete 200.

Usage: idle_clients.py PORT N [--path /1k.bin] [--hold SECS]
                               [--timeout SECS]
"""

import argparse
import select
import socket
import sys
import time


def read_response(sock, deadline):
    """Reads one response; returns (status line, body length) or raises."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = recv(sock, deadline)
        if not chunk:
            raise ConnectionError("closed before the end of the head")
        buf += chunk
        if len(buf) > 65536:
            raise ValueError("response head too long")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].decode("latin-1")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("no Content-Length in: " + status)
    while len(body) < length:
        chunk = recv(sock, deadline)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    if len(body) != length:
        raise ValueError("more bytes than Content-Length")
    return status, length


def recv(sock, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no response in time")
    sock.settimeout(left)
    return sock.recv(65536)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--path", default="/1k.bin")
    ap.add_argument("--hold", type=float, default=300.0,
                    help="seconds to hold the idle connections at most")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to open every connection at most")
    args = ap.parse_args(argv)

    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % args.path).encode()
    deadline = time.monotonic() + args.timeout
    conns = []
    try:
        for i in range(args.n):
            sock = socket.create_connection(("127.0.0.1", args.port),
                                            timeout=max(0.1, deadline - time.monotonic()))
            conns.append(sock)
            sock.sendall(request)
            status, _ = read_response(sock, deadline)
            if not status.startswith("HTTP/1.1 200"):
                raise ValueError("connection %d: %s" % (i, status))
        print("READY %d" % len(conns), flush=True)
        # Idle until told to stop (a line or end-of-file on stdin) or the
        # hold runs out.
        select.select([sys.stdin], [], [], args.hold)
        # Every connection must still be open: a server that closed idle
        # connections would make the figure meaningless.
        closed = 0
        for sock in conns:
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        if closed:
            print("CLOSED %d" % closed, flush=True)
            return 1
        return 0
    except (OSError, ValueError) as e:
        print("FAILED after %d connections: %s" % (len(conns), e), flush=True)
        return 1
    finally:
        for sock in conns:
            sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
# Idle keep-alive connections for the "idle" workload of tests/bench/run.sh.
"""Opens N keep-alive connections to 127.0.0.1:PORT (at most 200 being set
up at once, non-blocking, one selector); on each sends one
`GET PATH HTTP/1.1` and reads the whole response (a 200 with a
Content-Length body), then leaves the connection open and idle. Prints
`READY N` once all N have had their response, then holds them until
stdin reaches end-of-file or --hold seconds pass. At the end it checks
that every connection is still open (the server closed none of them),
prints `HELD N` or `CLOSED K of N` (closed, or sent
bytes unasked), and exits 0 only if none was closed.
Exits 1 with one line on stdout if a connection fails or --timeout
passes before all are ready. Raises its RLIMIT_NOFILE soft limit to the
hard one.

Usage: idle_holder.py PORT N [--path /1k.bin] [--timeout 120] [--hold 600]
"""

import argparse
import errno
import resource
import selectors
import socket
import sys
import time

IN_FLIGHT = 200


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        sys.exit("idle_holder: needs %d descriptors, the hard limit is %d"
                 % (need, hard))


def response_done(buf):
    """True when buf holds one whole 200 response; raises if it is not a 200."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        raise ValueError("status %r" % lines[0][:40])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    raise ValueError("no Content-Length")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--path", default="/1k.bin")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--hold", type=float, default=600.0)
    a = ap.parse_args(argv)
    raise_nofile(a.n + 64)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % a.path).encode()

    sel = selectors.DefaultSelector()
    idle, opened, pending = [], 0, 0
    deadline = time.monotonic() + a.timeout
    try:
        while len(idle) < a.n:
            while opened < a.n and pending < IN_FLIGHT:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", a.port))
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, "connect: " + errno.errorcode.get(err, "?"))
                sel.register(s, selectors.EVENT_WRITE, [b""])
                opened += 1
                pending += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("%d of %d ready after %gs"
                                   % (len(idle), a.n, a.timeout))
            for key, ev in sel.select(min(left, 1.0)):
                s, state = key.fileobj, key.data
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect: " + errno.errorcode.get(err, "?"))
                    s.send(req)   # a few dozen bytes into an empty buffer
                    sel.modify(s, selectors.EVENT_READ, state)
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the response ended")
                state[0] += chunk
                if response_done(state[0]):
                    sel.unregister(s)
                    idle.append(s)
                    pending -= 1
    except (OSError, ValueError) as e:
        print("FAILED %s (%d of %d ready)" % (e, len(idle), a.n), flush=True)
        return 1
    print("READY %d" % len(idle), flush=True)

    # Idle until stdin closes (or a line comes) or --hold passes.
    sel.close()
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    sel.select(a.hold)

    closed = 0
    for s in idle:
        try:
            s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            closed += 1   # EOF, or bytes nobody asked for (a 408, say)
        except BlockingIOError:
            pass   # open and quiet: as it should be
        except OSError:
            closed += 1
    if closed:
        print("CLOSED %d of %d" % (closed, len(idle)), flush=True)
        return 1
    print("HELD %d" % len(idle), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

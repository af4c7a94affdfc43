#!/usr/bin/env python3
# Idle TLS keep-alive connections for the "idle" workload of tests/bench/tls/run.sh.
"""Opens N TLS keep-alive connections to 127.0.0.1:PORT (at most 100 being
set up at once, non-blocking, one selector); on each does a full TLS
handshake (SNI localhost, chain not verified), sends one
`GET PATH HTTP/1.1` and reads the whole response (a 200 with a
Content-Length body), then leaves the connection open and idle. Prints
`READY N VERSION CIPHER REUSED` (the first connection's protocol and
suite, and how many connections resumed a session: 0, as no session is
ever offered) once all N have had their response, then holds them until
stdin reaches end-of-file or --hold seconds pass. At the end it checks
that every connection is still open, prints `HELD N` or `CLOSED K of N`,
and exits 0 only if none was closed. Exits 1 with one line on stdout if a
connection fails or --timeout passes before all are ready. Raises its
RLIMIT_NOFILE soft limit to the hard one.

The protocol, suite and group come from the OpenSSL configuration
(OPENSSL_CONF; run.sh points it at a file with TLS 1.3 only,
TLS_AES_128_GCM_SHA256 and X25519), as for wrk.

Usage: idle_tls_holder.py PORT N [--path /1k.bin] [--timeout 120] [--hold 600]
"""

import argparse
import errno
import resource
import selectors
import socket
import ssl
import sys
import time

IN_FLIGHT = 100


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        sys.exit("idle_tls_holder: needs %d descriptors, the hard limit is %d"
                 % (need, hard))


def response_done(buf):
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


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.phase = "connect"
        self.buf = b""


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--path", default="/1k.bin")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--hold", type=float, default=600.0)
    a = ap.parse_args(argv)
    raise_nofile(a.n + 64)
    req = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % a.path).encode()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])

    sel = selectors.DefaultSelector()
    idle, opened, pending, reused = [], 0, 0, 0
    first = None
    deadline = time.monotonic() + a.timeout

    def step(c):
        """Moves c on; True once its response is complete."""
        nonlocal reused, first
        while True:
            try:
                if c.phase == "handshake":
                    c.sock.do_handshake()
                    c.phase = "send"
                    if first is None:
                        first = (c.sock.version(), c.sock.cipher()[0])
                    if c.sock.session_reused:
                        reused += 1
                    continue
                if c.phase == "send":
                    c.sock.send(req)   # a few dozen bytes into an empty buffer
                    c.phase = "read"
                    continue
                chunk = c.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the response ended")
                c.buf += chunk
                if response_done(c.buf):
                    return True
            except ssl.SSLWantReadError:
                sel.modify(c.sock, selectors.EVENT_READ, c)
                return False
            except ssl.SSLWantWriteError:
                sel.modify(c.sock, selectors.EVENT_WRITE, c)
                return False

    try:
        while len(idle) < a.n:
            while opened < a.n and pending < IN_FLIGHT:
                raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                raw.setblocking(False)
                err = raw.connect_ex(("127.0.0.1", a.port))
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, "connect: " + errno.errorcode.get(err, "?"))
                sel.register(raw, selectors.EVENT_WRITE, Conn(raw))
                opened += 1
                pending += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("%d of %d ready after %gs" % (len(idle), a.n, a.timeout))
            for key, _ev in sel.select(min(left, 1.0)):
                c = key.data
                if c.phase == "connect":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect: " + errno.errorcode.get(err, "?"))
                    sel.unregister(c.sock)
                    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost",
                                             do_handshake_on_connect=False)
                    sel.register(c.sock, selectors.EVENT_READ, c)
                    c.phase = "handshake"
                if step(c):
                    sel.unregister(c.sock)
                    idle.append(c.sock)
                    pending -= 1
    except (OSError, ValueError) as e:
        print("FAILED %s (%d of %d ready)" % (e, len(idle), a.n), flush=True)
        return 1
    print("READY %d %s %s %d" % (len(idle), first[0], first[1], reused), flush=True)

    sel.close()
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    sel.select(a.hold)

    closed = 0
    for s in idle:
        try:
            s.setblocking(False)
            if s.recv(1):
                closed += 1   # bytes nobody asked for (a 408, say)
            else:
                closed += 1   # EOF
        except ssl.SSLWantReadError:
            pass   # open and quiet: as it should be
        except (OSError, ssl.SSLError):
            closed += 1
    if closed:
        print("CLOSED %d of %d" % (closed, len(idle)), flush=True)
        return 1
    print("HELD %d" % len(idle), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

//! An HTTP/2 client at the level of frames, for the tests that must send
//! what no well-behaved client sends (floods, resets, bombs, windows held
//! at zero) or watch frames one by one: Debian's Python with the `h2`
//! project's framing (`hyperframe`) and header compression (`hpack`).
//! [`h2_client`] runs one scenario (a `mode`) against a server and
//! returns what it saw as JSON.

use std::path::Path;

use serde_json::Value;

use crate::tls::run_python;
use crate::ServerProcess;

/// RFC 9113's error codes the tests look for.
pub const NO_ERROR: u64 = 0;
pub const PROTOCOL_ERROR: u64 = 1;
pub const INTERNAL_ERROR: u64 = 2;
pub const FRAME_SIZE_ERROR: u64 = 6;
pub const REFUSED_STREAM: u64 = 7;
pub const ENHANCE_YOUR_CALM: u64 = 11;

/// The client: `h2client.py PORT MODE ARGS...`, printing one JSON object.
pub const H2_CLIENT: &str = r#"
import hashlib, json, os, signal, socket, sys, time
import hpack
from hyperframe.frame import (Frame, DataFrame, HeadersFrame, ContinuationFrame,
    SettingsFrame, WindowUpdateFrame, RstStreamFrame, PingFrame, GoAwayFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

class Stream:
    def __init__(self):
        self.headers, self.data, self.ended, self.reset = None, bytearray(), False, None
        self.ended_at, self.max_frame = None, 0

class Conn:
    def __init__(self, port, settings=None, auto_window=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf, self.streams, self.goaway, self.eof = b"", {}, None, False
        self.auto_window, self.window = auto_window, {}
        self.server_settings = False
        self.sock.sendall(PREFACE + SettingsFrame(0, settings or {}).serialize())
        # The server's SETTINGS, acknowledged, before anything else: a
        # scenario's frames then go unbroken by the ACK.
        self.until(lambda: self.server_settings, 10)

    def send(self, *frames):
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def block(self, path, method="GET", extra=()):
        fields = [(":method", method), (":scheme", "http"), (":path", path),
                  (":authority", "localhost")] + list(extra)
        return self.enc.encode(fields)

    def request(self, sid, path, method="GET", end=True, extra=()):
        f = HeadersFrame(sid, self.block(path, method, extra))
        f.flags.add("END_HEADERS")
        if end:
            f.flags.add("END_STREAM")
        self.streams.setdefault(sid, Stream())
        return f

    def stream(self, sid):
        return self.streams.setdefault(sid, Stream())

    def read_some(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                break
            frame.parse_body(memoryview(self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
            self.on_frame(frame, length)
        return True

    def on_frame(self, frame, length):
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.send(SettingsFrame(0, flags=["ACK"]))
            self.server_settings = True
        elif isinstance(frame, GoAwayFrame):
            self.goaway = (frame.last_stream_id, frame.error_code)
        elif isinstance(frame, HeadersFrame):
            s = self.stream(frame.stream_id)
            s.headers = dict(self.dec.decode(frame.data))
            if "END_STREAM" in frame.flags:
                s.ended, s.ended_at = True, time.monotonic()
        elif isinstance(frame, DataFrame):
            s = self.stream(frame.stream_id)
            s.data += frame.data
            s.max_frame = max(s.max_frame, length)
            self.window[frame.stream_id] = self.window.get(frame.stream_id, 0) - length
            if "END_STREAM" in frame.flags:
                s.ended, s.ended_at = True, time.monotonic()
            if self.auto_window and length:
                self.send(WindowUpdateFrame(0, length), WindowUpdateFrame(frame.stream_id, length))
        elif isinstance(frame, RstStreamFrame):
            self.stream(frame.stream_id).reset = frame.error_code

    def until(self, done, seconds=20):
        deadline = time.monotonic() + seconds
        while not done() and not self.eof and time.monotonic() < deadline:
            self.read_some(min(1.0, max(0.01, deadline - time.monotonic())))
        return done()

    def status(self, sid):
        s = self.streams.get(sid)
        return int(s.headers[":status"]) if s and s.headers else None

def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()

def flood(conn, send_batch, limit):
    """Calls `send_batch(sent)` (it sends one batch and says how many it
    sent) until `limit`, the server's GOAWAY or its close, then waits for
    the GOAWAY; how many were sent."""
    sent = 0
    try:
        while sent < limit and conn.goaway is None and not conn.eof:
            sent += send_batch(sent)
            conn.read_some(0.001)
    except (BrokenPipeError, ConnectionResetError):
        pass
    conn.until(lambda: conn.goaway is not None, 10)
    return sent

def frames(conn, make, n=100):
    """A batch for `flood`: `n` frames made by `make(i)`."""
    def send_batch(sent):
        conn.send(*[make(sent + i) for i in range(n)])
        return n
    return send_batch

port, mode, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = {}
if mode == "rapid_reset":
    c = Conn(port)
    def opened_and_reset(sent):
        pairs = [[c.request(2 * (sent + i) + 1, "/index.html"), RstStreamFrame(2 * (sent + i) + 1, 8)]
                 for i in range(50)]
        c.send(*[f for pair in pairs for f in pair])
        return 50
    out = {"sent": flood(c, opened_and_reset, 5000), "goaway": c.goaway}
elif mode == "continuation_flood":
    c = Conn(port)
    first = HeadersFrame(1, c.block("/index.html"))
    first.flags.add("END_STREAM")
    c.send(first)
    junk = b"\x00\x01a\x01b" * 200
    sent = flood(c, frames(c, lambda i: ContinuationFrame(1, junk), 1), 400)
    out = {"frames": sent, "bytes": sent * len(junk), "goaway": c.goaway}
elif mode == "hpack_bomb":
    c = Conn(port)
    big = "v" * 3000
    c.send(c.request(1, "/index.html", extra=[("x-big", big)]))
    c.until(lambda: c.stream(1).ended)
    bomb = c.block("/index.html", extra=[("x-big", big)] * 150)
    f = HeadersFrame(3, bomb)
    f.flags.add("END_HEADERS"); f.flags.add("END_STREAM")
    c.send(f)
    c.until(lambda: c.stream(3).reset is not None or c.stream(3).ended)
    c.send(c.request(5, "/index.html"))
    c.until(lambda: c.stream(5).ended)
    out = {"bomb_bytes": len(bomb), "first": c.status(1), "bomb_reset": c.stream(3).reset,
           "bomb_status": c.status(3), "after": c.status(5), "goaway": c.goaway}
    # A block that would decode to 6 MB ends the connection.
    huge = c.block("/index.html", extra=[("x-big", big)] * 2000)
    f = HeadersFrame(7, huge)
    f.flags.add("END_HEADERS"); f.flags.add("END_STREAM")
    c.send(f)
    c.until(lambda: c.goaway is not None)
    out.update({"huge_bytes": len(huge), "huge_goaway": c.goaway})
elif mode in ("ping_flood", "settings_flood", "empty_data_flood"):
    c = Conn(port)
    if mode == "ping_flood":
        make = lambda i: PingFrame(0, (i).to_bytes(8, "big"))
    elif mode == "settings_flood":
        make = lambda i: SettingsFrame(0, {})
    else:
        c.send(c.request(1, args[0], method="POST", end=False))
        make = lambda i: DataFrame(1, b"")
    out = {"sent": flood(c, frames(c, make), 20000), "goaway": c.goaway}
elif mode == "max_streams":
    c = Conn(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.send(*[c.request(2 * i + 1, args[0]) for i in range(129)])
    last = 2 * 128 + 1
    held_open = lambda: [s for s in range(1, last, 2) if c.stream(s).headers is not None]
    c.until(lambda: c.stream(last).reset is not None and len(held_open()) == 128, 10)
    held = held_open()
    c.send(SettingsFrame(0, {SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20}))
    c.until(lambda: all(c.stream(s).ended or c.stream(s).reset for s in range(1, last, 2)), 30)
    done = [s for s in range(1, last, 2) if c.stream(s).ended]
    out = {"refused": c.stream(last).reset, "held_with_headers": len(held),
           "completed": len(done), "shas": sorted(set(sha(c.stream(s).data) for s in done)),
           "resets": sorted(set(c.stream(s).reset for s in range(1, last, 2) if c.stream(s).reset is not None)),
           "goaway": c.goaway}
elif mode == "oversized_frame":
    c = Conn(port)
    c.send(c.request(1, args[0], method="POST", end=False))
    c.sock.sendall(DataFrame(1, b"x" * 20000).serialize())
    c.until(lambda: c.goaway is not None, 10)
    out = {"goaway": c.goaway}
elif mode == "flow_control":
    window = int(args[1])
    c = Conn(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: window}, auto_window=False)
    c.send(c.request(1, args[0]))
    credit, overflow = window, False
    conn_credit = 65535
    deadline = time.monotonic() + 30
    while not c.stream(1).ended and c.stream(1).reset is None and not c.eof and time.monotonic() < deadline:
        before = len(c.stream(1).data)
        c.read_some(1.0)
        got = len(c.stream(1).data) - before
        if got:
            credit -= got
            conn_credit -= got
            overflow |= credit < 0 or conn_credit < 0
            c.send(WindowUpdateFrame(1, got), WindowUpdateFrame(0, got))
            credit += got
            conn_credit += got
    s = c.stream(1)
    out = {"status": c.status(1), "bytes": len(s.data), "sha": sha(s.data),
           "max_frame": s.max_frame, "overflow": overflow, "reset": s.reset}
elif mode == "zero_window":
    c = Conn(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0}, auto_window=False)
    start = time.monotonic()
    c.send(c.request(1, args[0]), c.request(3, args[1]), WindowUpdateFrame(3, 1 << 20))
    c.until(lambda: c.stream(3).ended, 10)
    other = time.monotonic() - start
    c.until(lambda: c.stream(1).reset is not None, 30)
    held = time.monotonic() - start
    c.send(c.request(5, args[1]), WindowUpdateFrame(5, 1 << 20))
    c.until(lambda: c.stream(5).ended, 10)
    out = {"held_headers": c.status(1), "held_reset": c.stream(1).reset, "held_seconds": held,
           "other": c.status(3), "other_sha": sha(c.stream(3).data), "other_seconds": other,
           "after": c.status(5), "goaway": c.goaway}
elif mode == "drain":
    pid, release = int(args[1]), args[2]
    c = Conn(port)
    c.send(c.request(1, args[0]))
    c.until(lambda: c.stream(1).headers is not None)
    os.kill(pid, signal.SIGTERM)
    c.until(lambda: c.goaway is not None)
    goaway = c.goaway
    c.send(c.request(3, "/index.html"))
    open(release, "w").close()
    c.until(lambda: c.stream(1).ended)
    c.until(lambda: c.eof, 10)
    out = {"goaway": goaway, "body": bytes(c.stream(1).data).decode("latin-1"),
           "ended": c.stream(1).ended, "late_answered": c.stream(3).headers is not None,
           "eof": c.eof}
elif mode == "slow_and_fast":
    c = Conn(port)
    start = time.monotonic()
    c.send(c.request(1, args[0]))
    c.send(c.request(3, args[1]))
    c.until(lambda: c.stream(3).ended, 20)
    c.until(lambda: c.stream(1).ended, 60)
    s1, s3 = c.stream(1), c.stream(3)
    out = {"slow_status": c.status(1), "slow_sha": sha(s1.data),
           "slow_seconds": (s1.ended_at or time.monotonic()) - start,
           "fast_status": c.status(3), "fast_sha": sha(s3.data),
           "fast_seconds": (s3.ended_at or time.monotonic()) - start}
elif mode == "provoked_reset":
    # Streams held in flight by a zero window, each then reset by a
    # WINDOW_UPDATE of 0 (a stream error the server must answer).
    c = Conn(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    def held_then_reset(sent):
        batch = [2 * (sent + i) + 1 for i in range(20)]
        c.send(*[c.request(s, args[0]) for s in batch])
        c.until(lambda: all(c.stream(s).headers is not None or c.stream(s).reset is not None for s in batch) or c.goaway is not None, 5)
        c.send(*[WindowUpdateFrame(s, 0) for s in batch])
        return len(batch)
    out = {"sent": flood(c, held_then_reset, 3000), "goaway": c.goaway}
elif mode == "sequential":
    # `count` requests one after another on one connection.
    c = Conn(port)
    for i in range(int(args[1])):
        if c.goaway is not None or c.eof:
            break
        c.send(c.request(2 * i + 1, args[0]))
        c.until(lambda: c.stream(2 * i + 1).ended or c.goaway is not None)
    c.until(lambda: c.eof, 10)
    answered = [s for s, st in sorted(c.streams.items()) if st.ended]
    out = {"answered": len(answered), "goaway": c.goaway, "eof": c.eof}
elif mode == "unfinished_post":
    # A request answered before its body comes, the body never sent.
    c = Conn(port)
    start = time.monotonic()
    c.send(c.request(1, args[0], method="POST", end=False, extra=[("content-length", "10")]))
    c.until(lambda: c.stream(1).ended)
    c.until(lambda: c.eof, 20)
    out = {"status": c.status(1), "goaway": c.goaway, "eof": c.eof,
           "seconds": time.monotonic() - start}
elif mode == "held_streams":
    # As many streams as asked, each held open by a zero window.
    c = Conn(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    n = int(args[1])
    c.send(*[c.request(2 * i + 1, args[0]) for i in range(n)])
    c.until(lambda: all(c.stream(2 * i + 1).headers is not None or c.stream(2 * i + 1).reset is not None for i in range(n)), 10)
    out = {"held": sum(1 for i in range(n) if c.stream(2 * i + 1).headers is not None),
           "refused": sum(1 for i in range(n) if c.stream(2 * i + 1).reset == 7)}
elif mode == "h2_package":
    # The h2 package's own client state machine (h2.connection), its
    # window kept small and given back as the data is consumed.
    import h2.config, h2.connection, h2.events, h2.settings
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: int(args[0])})
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(conn.data_to_send())
    paths = args[1:]
    bodies, statuses, ended = {}, {}, set()
    for i, path in enumerate(paths):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", path),
                                (":authority", "localhost")], end_stream=True)
        bodies[sid], statuses[sid] = bytearray(), None
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + 30
    while len(ended) < len(paths) and time.monotonic() < deadline:
        data = sock.recv(1 << 16)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                statuses[event.stream_id] = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended.add(event.stream_id)
        sock.sendall(conn.data_to_send())
    out = {"statuses": [statuses[s] for s in sorted(statuses)],
           "shas": [sha(bodies[s]) for s in sorted(bodies)], "ended": len(ended)}
print(json.dumps(out))
"#;

/// Runs `mode` of [`H2_CLIENT`] against `server`'s plain port, its
/// script written in `dir`; the JSON it printed.
pub fn h2_client(server: &ServerProcess, dir: &Path, mode: &str, args: &[&str]) -> Value {
    let port = server.port().to_string();
    let mut all = vec![port.as_str(), mode];
    all.extend_from_slice(args);
    let run = run_python(dir, "h2client.py", H2_CLIENT, &all);
    assert!(run.status.success(), "h2client.py {mode}: {}", run.stderr);
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("h2client.py {mode} printed no JSON ({e}): {}", run.stdout))
}

/// The error code of a `goaway` the client saw (`[last_stream, code]`).
pub fn goaway_code(seen: &Value) -> Option<u64> {
    seen.get("goaway")?.get(1)?.as_u64()
}

/// The SHA-256 of `bytes` in hex, as the client prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

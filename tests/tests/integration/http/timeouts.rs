//! Connection timeouts, under each event backend, each bounded from below
//! (nothing closes early) and from above (the close does come):
//!
//! - an idle keep-alive connection is closed after `--keepalive-timeout`,
//!   and the idle timer restarts after every request;
//! - a client that never finishes its request head is cut off after
//!   `--header-timeout` (with a 408 or by closing), also when it trickles
//!   the head one byte at a time, and also when the slow head is pipelined
//!   behind a complete request (the timer runs from the first byte of each
//!   head);
//! - a client that stops reading a large response is disconnected after
//!   `--send-timeout`;
//! - a request body the server drops (a GET's) is read for at most
//!   `--discard-timeout` in all, however often its bytes come (each one
//!   restarts the keep-alive timer); the rest of an upload refused with a
//!   close is drained for the 2 s of the lingering close, not longer.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use tests::http_client::request_bytes;
use tests::procfs::poll_until;
use tests::socket::{connect_with_small_receive_buffer, larger_than_socket_buffers};
use tests::status::open_connections_after_a_turn;
use tests::{per_backend, site_docroot, ServerProcess, TempDocroot};

/// Most timeouts under test are 1 s. Every measurement starts before the
/// event that starts the server's timer, so nothing may close before the
/// timeout itself (less this much for the clocks' granularity)...
const EARLY_SLACK: Duration = Duration::from_millis(100);
/// ... and the close must have come this long after the timeout: generous,
/// because on a loaded 2-core machine the server (or this test) can wait
/// seconds for a CPU; a server that never closes still fails.
const LATE_SLACK: Duration = Duration::from_secs(8);
/// Reads wait this long, past any close that counts, so a missing close
/// shows up as a timed-out read rather than a hang.
const READ_WAIT: Duration = Duration::from_secs(12);
/// Gap between trickled bytes.
const TRICKLE: Duration = Duration::from_millis(400);
/// The keep-alive timeout of the paced-requests test, and the pause
/// between its requests: a third of the timeout, so that a test thread
/// that wakes up late on a loaded machine still comes back in time.
const PACED_KEEPALIVE: Duration = Duration::from_secs(3);
const PACING: Duration = Duration::from_secs(1);

fn timeout_server(backend: &str) -> ServerProcess {
    ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--keepalive-timeout", "1", "--header-timeout", "1"],
    )
}

/// `elapsed` runs from before the server's timer started to the close.
fn assert_closed_in_window(what: &str, elapsed: Duration) {
    assert_closed_after(what, elapsed, Duration::from_secs(1));
}

fn assert_closed_after(what: &str, elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed + EARLY_SLACK >= timeout,
        "{what}: closed after {elapsed:?}, before the {timeout:?} timeout"
    );
    assert!(
        elapsed < timeout + LATE_SLACK,
        "{what}: closed only after {elapsed:?} with a {timeout:?} timeout"
    );
}

fn idle_keepalive_connection_is_closed(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
    conn.set_read_timeout(READ_WAIT);
    // Taken before the request: the server's idle timer starts once the
    // response is written, which may be well before this test reads it.
    let idle_since = Instant::now();
    conn.get("/index.html").assert_status(200);
    conn.expect_closed();
    assert_closed_in_window("idle keep-alive connection", idle_since.elapsed());
}

fn keepalive_connection_is_usable_before_the_timeout(backend: &str) {
    let timeout = PACED_KEEPALIVE.as_secs().to_string();
    let server = ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--keepalive-timeout", &timeout],
    );
    let mut conn = server.connect();
    conn.set_read_timeout(READ_WAIT + PACED_KEEPALIVE);
    let first = Instant::now();
    // 5 requests 1 s apart: 4 s in all, past the 3 s timeout, so the idle
    // timer must restart after each response. (The pacing sleep is the
    // behaviour under test.)
    let mut idle_since = first;
    for i in 0..5 {
        if i > 0 {
            thread::sleep(PACING);
        }
        idle_since = Instant::now();
        let response = conn
            .try_send(request_bytes("GET", "/index.html", &[]).as_bytes())
            .and_then(|()| conn.try_read_response(false))
            .unwrap_or_else(|e| {
                panic!(
                    "request {} ({:?} after the first) on a connection idle for {PACING:?}: {e}",
                    i + 1,
                    first.elapsed()
                )
            });
        response.assert_status(200);
    }
    // And it still closes once idle.
    conn.expect_closed();
    assert_closed_after(
        "after 5 paced requests",
        idle_since.elapsed(),
        PACED_KEEPALIVE,
    );
}

fn incomplete_request_head_is_cut_off(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
    conn.set_read_timeout(READ_WAIT);
    let started = Instant::now();
    conn.send(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    match conn.try_read_response(false) {
        Ok(response) => {
            response.assert_status(408);
            conn.expect_closed();
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ),
            "expected a 408 or a close, got {e}"
        ),
    }
    assert_closed_in_window("incomplete head", started.elapsed());
}

/// How a trickle ended.
struct Trickled {
    /// Bytes of the head written before the server closed.
    sent: usize,
    /// From the first trickled byte to the close.
    elapsed: Duration,
    /// What the server wrote before closing (empty, or a 408).
    reply: Vec<u8>,
}

/// Writes `head` (a request head, or a body) one byte every [`TRICKLE`]
/// until the server closes the connection (end-of-file, a reset, or a
/// failed write), reading whatever it sends meanwhile. Panics if all of it
/// went out, or if no close came within [`READ_WAIT`].
fn trickle_until_closed(mut stream: &TcpStream, head: &[u8]) -> Trickled {
    stream
        .set_read_timeout(Some(TRICKLE))
        .expect("set_read_timeout");
    let started = Instant::now();
    let mut reply = Vec::new();
    let mut sent = 0;
    let mut piece = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < READ_WAIT,
            "the server did not close a trickling connection within {READ_WAIT:?} \
             ({sent} of {} bytes sent)",
            head.len()
        );
        if sent < head.len() {
            if stream.write_all(&head[sent..=sent]).is_err() {
                break;
            }
            sent += 1;
        }
        assert!(
            sent < head.len(),
            "the whole {}-byte head went out one byte every {TRICKLE:?} without a close",
            head.len()
        );
        // Waits up to TRICKLE for the server, which is also the pacing.
        match stream.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&piece[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Trickled {
        sent,
        elapsed: started.elapsed(),
        reply,
    }
}

/// A long head: at one byte every 0.4 s it would take half a minute.
fn long_head() -> Vec<u8> {
    request_bytes(
        "GET",
        "/index.html",
        &[("X-Padding", "a-header-that-takes-long-to-trickle")],
    )
    .into_bytes()
}

fn assert_cut(what: &str, trickled: &Trickled, head_len: usize) {
    assert!(
        trickled.reply.is_empty() || trickled.reply.starts_with(b"HTTP/1.1 408 "),
        "{what}: the server answered something other than a 408: {:?}",
        String::from_utf8_lossy(&trickled.reply)
    );
    assert!(trickled.sent < head_len, "{what}: the whole head went out");
    assert_closed_in_window(what, trickled.elapsed);
}

fn trickled_head_is_cut_off(backend: &str) {
    let server = timeout_server(backend);
    let stream = server.connect_raw();
    let head = long_head();
    let trickled = trickle_until_closed(&stream, &head);
    assert_cut("a head trickled a byte every 0.4 s", &trickled, head.len());
    // A prompt client is still served.
    server.connect().get("/index.html").assert_status(200);
}

fn trickled_head_pipelined_behind_a_request_is_cut_off(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
    conn.set_read_timeout(READ_WAIT);
    let second = long_head();
    // A complete request and the first byte of the next, in one write.
    let mut first = request_bytes("GET", "/index.html", &[]).into_bytes();
    first.push(second[0]);
    let first_byte_at = Instant::now();
    conn.send(&first);
    conn.read_response().assert_status(200);
    assert!(conn.buffered().is_empty(), "bytes after the first response");
    let stream = conn.stream().try_clone().expect("clone the socket");
    let trickled = trickle_until_closed(&stream, &second[1..]);
    // The header timer of the second head started with its first byte.
    let since_first_byte = first_byte_at.elapsed();
    assert_cut(
        "a head pipelined behind a complete request, then trickled",
        &Trickled {
            sent: trickled.sent + 1,
            elapsed: since_first_byte,
            reply: trickled.reply,
        },
        second.len(),
    );
}

fn stalled_reader_is_dropped_after_the_send_timeout(backend: &str) {
    // Far more than the socket buffers on both sides hold (the client's
    // receive buffer is made small, the server's send buffer is at most
    // what tcp_wmem allows).
    let stalled_size = larger_than_socket_buffers(32 << 20);
    let docroot = TempDocroot::new("send-timeout");
    docroot.write(
        "big.bin",
        &tests::docroot::pseudo_random_bytes(stalled_size, 5),
    );
    docroot.write("page.html", b"<p>small</p>\n");
    let server = ServerProcess::serve_with(
        docroot.path(),
        backend,
        &["--send-timeout", "1", "--status-path", "/server-status"],
    );
    let mut stalled = connect_with_small_receive_buffer(server.addr());
    // Taken before the request goes out, so before the server can start
    // its send timer.
    let asked = Instant::now();
    stalled
        .write_all(request_bytes("GET", "/big.bin", &[]).as_bytes())
        .expect("send the request");
    // Readiness check instead of a fixed wait: the status page's own
    // connection is the only one left once the stalled one is dropped.
    let open = || open_connections_after_a_turn(&server);
    let dropped = poll_until(Duration::from_secs(1) + LATE_SLACK, || open() == 1);
    let took = asked.elapsed();
    assert!(
        dropped,
        "the stalled connection was still open {took:?} after its request with \
         --send-timeout 1 ({} open)",
        open()
    );
    assert!(
        took + EARLY_SLACK >= Duration::from_secs(1),
        "dropped after {took:?}, before the 1 s send timeout"
    );
    // What the kernel buffered arrives, then end-of-file or a reset: never
    // the whole body.
    stalled
        .set_read_timeout(Some(READ_WAIT))
        .expect("set_read_timeout");
    let mut got = 0usize;
    let mut piece = vec![0u8; 1 << 20];
    let ended = loop {
        match stalled.read(&mut piece) {
            Ok(0) => break "end-of-file".to_owned(),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no end-of-file on the dropped connection after {got} bytes")
            }
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        got < stalled_size,
        "the whole {stalled_size}-byte response arrived ({got} bytes, then {ended})"
    );
    eprintln!("{backend}: stalled reader dropped after {took:?}; {got} bytes, then {ended}");
    // The server is fine.
    server.connect().get("/page.html").assert_status(200);
}

/// Sends `head` (announcing a body of [`TRICKLED_BODY`] bytes), reads
/// the response, then trickles the body until the server closes.
fn trickle_a_body(server: &ServerProcess, head: &str, status: u16) -> Trickled {
    let mut conn = server.connect();
    conn.set_read_timeout(READ_WAIT);
    conn.send(head.as_bytes());
    conn.read_response().assert_status(status);
    let body = vec![b'x'; TRICKLED_BODY];
    trickle_until_closed(conn.stream(), &body)
}

/// A body that takes 40 s to trickle.
const TRICKLED_BODY: usize = 100;

fn a_trickled_body_is_dropped_for_at_most_the_discard_timeout(backend: &str) {
    let server = ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--discard-timeout", "2", "--keepalive-timeout", "3"],
    );
    let length = TRICKLED_BODY.to_string();
    let head = request_bytes("GET", "/index.html", &[("Content-Length", &length)]);
    // Taken before the head goes: the server's clock starts later.
    let started = Instant::now();
    let trickled = trickle_a_body(&server, &head, 200);
    assert!(trickled.sent < TRICKLED_BODY, "the whole body went out");
    assert!(trickled.reply.is_empty(), "more bytes after the response");
    assert_closed_after(
        "a body dropped a byte every 0.4 s",
        started.elapsed(),
        Duration::from_secs(2),
    );
}

fn a_refused_upload_lingers_for_a_bounded_time(backend: &str) {
    let server = ServerProcess::serve(&site_docroot().root, backend);
    // Larger than the server drops to keep a connection: 405 and close.
    let head = request_bytes("POST", "/index.html", &[("Content-Length", "10485760")]);
    let trickled = trickle_a_body(&server, &head, 405);
    assert!(trickled.sent < TRICKLED_BODY, "the whole body went out");
    let linger = Duration::from_secs(2);
    assert!(
        trickled.elapsed < linger + LATE_SLACK,
        "a refused upload trickled after its 405 was drained for {:?}",
        trickled.elapsed
    );
}

per_backend!(
    idle_keepalive_connection_is_closed,
    keepalive_connection_is_usable_before_the_timeout,
    incomplete_request_head_is_cut_off,
    trickled_head_is_cut_off,
    trickled_head_pipelined_behind_a_request_is_cut_off,
    stalled_reader_is_dropped_after_the_send_timeout,
    a_trickled_body_is_dropped_for_at_most_the_discard_timeout,
    a_refused_upload_lingers_for_a_bounded_time,
);

//! A connection's own keep-alive limits, under each event backend:
//!
//! - `--keepalive-requests N`: the response to the Nth request on a
//!   connection says `Connection: close` and the connection closes, one
//!   request at a time or pipelined (requests behind the Nth are not
//!   answered); the default is 1000;
//! - `--keepalive-time SECS`: once a connection is that old, the response
//!   to its next request closes it; before, it is kept.

use std::time::{Duration, Instant};

use tests::http_client::request_bytes;
use tests::{per_backend, site_docroot, Response, ServerProcess};

/// How long the lifetime test waits for the closing response past the
/// lifetime: generous, for a loaded machine; a server that never closes
/// still fails.
const LATE_SLACK: Duration = Duration::from_secs(8);
/// The pause between the lifetime test's requests.
const PACING: Duration = Duration::from_millis(200);

/// Asserts `response` (to request number `n`) keeps the connection.
fn assert_kept(response: &Response, n: usize) {
    response.assert_status(200);
    assert!(
        !response.connection_has("close"),
        "request {n}: the connection was not kept:\n{}",
        response.head_text()
    );
}

/// Asserts `response` (to request number `n`) closes the connection.
fn assert_closing(response: &Response, n: usize) {
    response.assert_status(200);
    assert!(
        response.connection_has("close"),
        "request {n}: the last allowed response does not say Connection: close:\n{}",
        response.head_text()
    );
}

fn the_last_allowed_request_closes(backend: &str) {
    let server = ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--keepalive-requests", "3"],
    );
    let mut conn = server.connect();
    assert_kept(&conn.get("/index.html"), 1);
    assert_kept(&conn.get("/index.html"), 2);
    assert_closing(&conn.get("/index.html"), 3);
    conn.expect_closed();
    // Pipelined: the fourth is not answered.
    let mut conn = server.connect();
    conn.send(
        request_bytes("GET", "/index.html", &[])
            .repeat(4)
            .as_bytes(),
    );
    assert_kept(&conn.read_response(), 1);
    assert_kept(&conn.read_response(), 2);
    assert_closing(&conn.read_response(), 3);
    conn.expect_closed();
}

fn a_connection_carries_1000_requests_by_default(backend: &str) {
    let server = ServerProcess::serve(&site_docroot().root, backend);
    let mut conn = server.connect();
    for n in 1..1000 {
        assert_kept(&conn.get("/index.html"), n);
    }
    assert_closing(&conn.get("/index.html"), 1000);
    conn.expect_closed();
}

fn an_old_connection_closes_after_its_next_response(backend: &str) {
    let lifetime = Duration::from_secs(2);
    let server =
        ServerProcess::serve_with(&site_docroot().root, backend, &["--keepalive-time", "2"]);
    // Taken before the connection exists: the server's clock for it starts
    // later.
    let before_connect = Instant::now();
    let mut conn = server.connect();
    let mut n = 0;
    loop {
        n += 1;
        let sent_at = before_connect.elapsed();
        let response = conn.get("/index.html");
        response.assert_status(200);
        let answered_at = before_connect.elapsed();
        if response.connection_has("close") {
            assert!(
                answered_at >= lifetime,
                "request {n}: closed {answered_at:?} after connecting, before the \
                 {lifetime:?} keep-alive time"
            );
            break;
        }
        assert!(
            sent_at < lifetime + LATE_SLACK,
            "request {n}, {sent_at:?} after connecting, was still kept with a \
             {lifetime:?} keep-alive time"
        );
        // The pacing is the behaviour under test: the connection ages.
        std::thread::sleep(PACING);
    }
    conn.expect_closed();
}

per_backend!(
    the_last_allowed_request_closes,
    a_connection_carries_1000_requests_by_default,
    an_old_connection_closes_after_its_next_response,
);

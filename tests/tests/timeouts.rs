//! Connection timeouts, under each event backend: an idle keep-alive
//! connection is closed after `--keepalive-timeout`, and a client that
//! never finishes its request head is cut off after `--header-timeout`
//! (with a 408 or by closing), while a prompt client is still served.

use std::time::{Duration, Instant};

use tests::{per_backend, site_docroot, ServerProcess};

/// Both timeouts are set to 1 s; nothing may close before this much.
const EARLIEST: Duration = Duration::from_millis(900);

fn timeout_server(backend: &str) -> ServerProcess {
    ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--keepalive-timeout", "1", "--header-timeout", "1"],
    )
}

fn idle_keepalive_connection_is_closed(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
    conn.get("/index.html").assert_status(200);
    let idle_since = Instant::now();
    conn.expect_closed();
    let idle = idle_since.elapsed();
    assert!(
        idle >= EARLIEST,
        "closed after {idle:?}, before the 1 s keep-alive timeout"
    );
}

fn keepalive_connection_is_usable_before_the_timeout(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
    // Several requests in quick succession all fit inside the timeout.
    for _ in 0..5 {
        conn.get("/index.html").assert_status(200);
    }
}

fn incomplete_request_head_is_cut_off(backend: &str) {
    let server = timeout_server(backend);
    let mut conn = server.connect();
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
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "expected a 408 or a close, got {e}"
        ),
    }
    let waited = started.elapsed();
    assert!(
        waited >= EARLIEST,
        "cut off after {waited:?}, before the 1 s header timeout"
    );
}

per_backend!(
    idle_keepalive_connection_is_closed,
    keepalive_connection_is_usable_before_the_timeout,
    incomplete_request_head_is_cut_off,
);

//! Clients that shut down their write side after sending (a half-close,
//! as `nc -N` and many scripts do), under each event backend:
//!
//! - a request waiting for a helper (held at the gate while the client's
//!   FIN arrives) still gets its whole response, then the connection
//!   closes;
//! - two pipelined requests, the first held at the gate, get both
//!   responses, in order;
//! - a large file being sent to a slow reader is sent whole;
//! - a CGI request gets its script's output; a CGI request whose
//!   Content-Length body the half-close cuts short gets 400, and its
//!   script never starts (the body is collected first);
//! - a client that half-closes and then resets (`SO_LINGER {1, 0}`) while
//!   its lookup is held is closed: at once under poll and epoll, which
//!   report the reset; under select, which cannot see it without reading,
//!   when the answer's write fails. The server keeps serving others.
//!
//! Before each check that needs the server to have seen the FIN, the test
//! counts open connections with `status::open_connections_after_a_turn`,
//! which the server answers only after handling what was pending.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use tests::cgi::{request_with_body, wait_for_file, CgiSite, Reaper, TEXT_HEAD};
use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::procfs::poll_until;
use tests::socket::{
    close_with_reset, connect_with_small_receive_buffer, larger_than_socket_buffers,
};
use tests::status::{
    open_connections_after_a_turn, status_json, status_number, wait_for_lookups_in_flight,
    STATUS_PATH,
};
use tests::{
    assert_bytes_eq, per_backend, site_docroot, Connection, HelperGate, ServerProcess, TempDocroot,
    DEADLINE,
};

/// Sends `requests` on `stream`, then shuts down its write side.
fn send_then_half_close(stream: &mut TcpStream, requests: &[u8]) {
    stream.write_all(requests).expect("send the requests");
    stream
        .shutdown(Shutdown::Write)
        .expect("shut down the write side");
}

/// Asserts the half-closed connection is still open (beside the status
/// page's own).
fn assert_still_open(server: &ServerProcess, what: &str) {
    assert_eq!(
        open_connections_after_a_turn(server),
        2,
        "{what}: the half-closed connection was closed before its answer"
    );
}

/// A server whose helpers hold lookups of paths containing `slow` at
/// `gate`, and a connection that sent `requests`, the first for
/// `/slow.html`, and half-closed while that lookup was held.
struct HalfClosedWhileHeld {
    gate: HelperGate,
    server: ServerProcess,
    stream: TcpStream,
}

fn half_closed_while_held(backend: &str, tag: &str, requests: &str) -> HalfClosedWhileHeld {
    let gate = HelperGate::new(tag);
    let server = gate.serve(&site_docroot().root, backend, "slow");
    let mut stream = server.connect_raw();
    stream
        .write_all(requests.as_bytes())
        .expect("send the requests");
    wait_for_lookups_in_flight(&server, 1);
    stream
        .shutdown(Shutdown::Write)
        .expect("shut down the write side");
    assert_still_open(&server, "a request held at the gate");
    HalfClosedWhileHeld {
        gate,
        server,
        stream,
    }
}

/// Reads the next response on `conn`: a 200 with the fixture site's `rel`.
fn assert_next_serves(conn: &mut Connection, rel: &str) {
    let response = conn.read_response();
    response.assert_status(200);
    assert_bytes_eq(rel, &response.body, &site_docroot().file(rel));
}

fn a_held_lookup_is_answered_after_a_half_close(backend: &str) {
    // A keep-alive request: the connection closes because nothing more
    // can come, not because the request asked for it.
    let request = request_bytes("GET", "/slow.html", &[]);
    let held = half_closed_while_held(backend, "half-close", &request);
    held.gate.open();
    let mut conn = Connection::from_stream(held.stream);
    assert_next_serves(&mut conn, "slow.html");
    conn.expect_closed();
}

fn pipelined_requests_are_all_answered_after_a_half_close(backend: &str) {
    let mut requests = request_bytes("GET", "/slow.html", &[]);
    requests.push_str(&request_bytes("GET", "/index.html", &[]));
    let held = half_closed_while_held(backend, "half-close-pipe", &requests);
    held.gate.open();
    let mut conn = Connection::from_stream(held.stream);
    assert_next_serves(&mut conn, "slow.html");
    assert_next_serves(&mut conn, "index.html");
    conn.expect_closed();
}

fn a_large_file_is_sent_whole_after_a_half_close(backend: &str) {
    // More than the kernel's buffers on both sides hold (the client's
    // receive buffer is made small), so most of it is still to be sent
    // when the server sees the FIN.
    let bytes = pseudo_random_bytes(larger_than_socket_buffers(8 << 20), 7);
    let docroot = TempDocroot::new("half-close-large");
    docroot.write("large.bin", &bytes);
    let server =
        ServerProcess::serve_with(docroot.path(), backend, &["--status-path", STATUS_PATH]);
    let mut stream = connect_with_small_receive_buffer(server.addr());
    let request = request_bytes("GET", "/large.bin", &[]);
    send_then_half_close(&mut stream, request.as_bytes());
    assert_still_open(&server, "a large file being sent");
    let mut conn = Connection::from_stream(stream);
    let response = conn.read_response();
    response.assert_status(200);
    assert_bytes_eq("/large.bin", &response.body, &bytes);
    conn.expect_closed();
}

fn a_script_answers_after_a_half_close(backend: &str) {
    let site = CgiSite::new("half-close-cgi");
    let _reaper = Reaper::new(&site);
    let started = site.outside().join("started");
    let go = site.outside().join("go");
    site.script(
        "cgi-bin/waits.cgi",
        &format!(
            "touch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n{TEXT_HEAD}\necho 'the script ran'\n",
            started.display(),
            go.display()
        ),
    );
    let server = ServerProcess::serve_with(site.root(), backend, &["--status-path", STATUS_PATH]);
    let mut stream = server.connect_raw();
    let request = request_bytes("GET", "/cgi-bin/waits.cgi", &[]);
    send_then_half_close(&mut stream, request.as_bytes());
    wait_for_file(&started);
    assert_still_open(&server, "a running script");
    std::fs::write(&go, b"").expect("let the script go on");
    let mut conn = Connection::from_stream(stream);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "the script ran\n");
    conn.expect_closed();
}

fn a_body_cut_short_by_a_half_close_gets_400(backend: &str) {
    let site = CgiSite::new("half-close-body");
    let reaper = Reaper::new(&site);
    let started = site.outside().join("started");
    // The script would read its whole body before answering; it starts
    // only once the body is whole, which this one never is.
    site.script(
        "cgi-bin/reads.cgi",
        &format!(
            "touch '{}'\ncat > /dev/null\n{TEXT_HEAD}\necho 'read it all'\n",
            started.display()
        ),
    );
    let server = ServerProcess::serve_with(site.root(), backend, &["--status-path", STATUS_PATH]);
    let mut stream = server.connect_raw();
    let mut request = request_with_body("POST", "/cgi-bin/reads.cgi", &[], &[b'x'; 100]);
    request.truncate(request.len() - 90);
    stream.write_all(&request).expect("send the request");
    // The server holds the 10 bytes that came, waiting for the rest.
    let mut status = serde_json::Value::Null;
    let held = poll_until(DEADLINE, || {
        status = status_json(&server, STATUS_PATH);
        status_number(&status, "/cgi_spooled_bytes") == 10
    });
    assert!(held, "the body's first 10 bytes were never held: {status}");
    stream
        .shutdown(Shutdown::Write)
        .expect("shut down the write side");
    let mut conn = Connection::from_stream(stream);
    conn.read_response().assert_error_page(400);
    conn.expect_closed();
    assert!(!started.exists(), "the script ran for a body cut short");
    assert!(
        reaper.running().is_empty(),
        "a script runs for a body cut short: {:#?}",
        reaper.running()
    );
}

fn a_reset_after_a_half_close_is_closed(backend: &str) {
    let request = request_bytes("GET", "/slow.html", &[]);
    let held = half_closed_while_held(backend, "half-close-reset", &request);
    close_with_reset(held.stream);
    let server = &held.server;
    let closed = || open_connections_after_a_turn(server) == 1;
    if backend != "select" {
        assert!(
            poll_until(DEADLINE, closed),
            "{backend}: the connection reset after its FIN is still open"
        );
    }
    held.gate.open();
    assert!(
        poll_until(DEADLINE, closed),
        "{backend}: the connection reset after its FIN is still open after its answer"
    );
    server.connect().get("/index.html").assert_status(200);
}

per_backend!(
    a_held_lookup_is_answered_after_a_half_close,
    pipelined_requests_are_all_answered_after_a_half_close,
    a_large_file_is_sent_whole_after_a_half_close,
    a_script_answers_after_a_half_close,
    a_body_cut_short_by_a_half_close_gets_400,
    a_reset_after_a_half_close_is_closed,
);

//! Uploads to scripts, chunked and by Content-Length, under each event
//! backend: the body is collected (16 KiB in memory, the rest in an
//! unlinked spool file) before the script starts, so slow uploads take no
//! script slot and a normal script still runs while they trickle in; a
//! body that stops arriving gets 408 after `--cgi-body-timeout`; bodies
//! that would pass `--cgi-spool-max` together get 503, one past
//! `--cgi-max-body` 413; a large upload reaches the script byte-exact and
//! leaves nothing in the spool directory.

use std::fs;

use tests::cgi::{chunked, CgiSite, Reaper, TEXT_HEAD};
use tests::docroot::pseudo_random_bytes;
use tests::procfs::poll_until;
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, DEADLINE};

/// The head of a chunked upload to `script`.
fn upload_head(script: &str) -> Vec<u8> {
    format!("POST {script} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .into_bytes()
}

/// The head of an upload of `length` bytes to `script` by Content-Length.
fn length_head(script: &str, length: usize) -> Vec<u8> {
    format!("POST {script} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n")
        .into_bytes()
}

/// A site with `cgi-bin/echo.cgi` (its stdin back, after CONTENT_LENGTH
/// on a line), `cgi-bin/hello.cgi` (one line) and `cgi-bin/store.cgi`
/// (stdin into `outside/upload.bin`, its size back).
fn spool_site() -> CgiSite {
    let site = CgiSite::new("cgi-spool");
    site.script(
        "cgi-bin/echo.cgi",
        &format!("{TEXT_HEAD}\nprintf '%s\\n' \"$CONTENT_LENGTH\"\ncat\n"),
    );
    site.script("cgi-bin/hello.cgi", &format!("{TEXT_HEAD}\necho hello\n"));
    let store = site.outside().join("upload.bin");
    site.script(
        "cgi-bin/store.cgi",
        &format!(
            "cat > '{store}'\n{TEXT_HEAD}\nwc -c < '{store}' | tr -d ' '\n",
            store = store.display()
        ),
    );
    site
}

/// Waits until the status page counts `bodies` request bodies being
/// collected holding `bytes`; returns the page.
fn wait_for_bodies(server: &ServerProcess, bodies: u64, bytes: u64) -> serde_json::Value {
    let mut status = serde_json::Value::Null;
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(server, STATUS_PATH);
            status_number(&status, "/cgi_bodies") == bodies
                && status_number(&status, "/cgi_spooled_bytes") == bytes
        }),
        "the status page never showed {bodies} bodies of {bytes} bytes: {status}"
    );
    status
}

fn slow_chunked_uploads_take_no_script_slots(backend: &str) {
    let site = spool_site();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &["--cgi-max-procs", "2", "--status-path", STATUS_PATH],
    );
    // Twice as many uploads as slots, each stopped after its first chunk.
    let mut uploads: Vec<Connection> = (0..4)
        .map(|_| {
            let mut conn = server.connect();
            let mut raw = upload_head("/cgi-bin/echo.cgi");
            raw.extend_from_slice(b"5\r\nhello\r\n");
            conn.send(&raw);
            conn
        })
        .collect();
    let status = wait_for_bodies(&server, 4, 20);
    assert_eq!(status_number(&status, "/cgi_running"), 0, "{status}");
    // A script still runs for everyone else meanwhile.
    let response = server.connect().get_dechunked("/cgi-bin/hello.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "hello\n");
    // Each upload, once complete, gets its script.
    for (i, conn) in uploads.iter_mut().enumerate() {
        let tail = format!("2\r\n-{i}\r\n0\r\n\r\n");
        conn.send(tail.as_bytes());
        let response = conn.read_response_dechunked();
        response.assert_status(200);
        assert_eq!(response.body_text(), format!("7\nhello-{i}"));
    }
    wait_for_bodies(&server, 0, 0);
}

fn a_stalled_chunked_body_gets_408(backend: &str) {
    let site = spool_site();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &["--cgi-body-timeout", "1", "--status-path", STATUS_PATH],
    );
    let mut conn = server.connect();
    let mut raw = upload_head("/cgi-bin/echo.cgi");
    raw.extend_from_slice(b"10\r\nonly part of");
    conn.send(&raw);
    conn.read_response().assert_error_page(408);
    conn.expect_closed();
    wait_for_bodies(&server, 0, 0);
}

fn bodies_past_the_bounds_are_refused(backend: &str) {
    let site = spool_site();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &[
            "--cgi-spool-max",
            "64K",
            "--cgi-max-body",
            "48K",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let part = pseudo_random_bytes(40 * 1024, 3);
    let mut first = server.connect();
    let mut raw = upload_head("/cgi-bin/store.cgi");
    raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
    raw.extend_from_slice(&part);
    raw.extend_from_slice(b"\r\n");
    first.send(&raw);
    wait_for_bodies(&server, 1, part.len() as u64);
    // A second body of the same size would pass the shared bound.
    let mut second = server.connect();
    second.send(&raw);
    let response = second.read_response();
    response.assert_error_page(503);
    assert_eq!(response.header("Retry-After"), Some("1"));
    second.expect_closed();
    // The first is untouched and completes.
    first.send(b"0\r\n\r\n");
    let response = first.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), format!("{}\n", part.len()));
    // With the spool empty again, one body past --cgi-max-body.
    wait_for_bodies(&server, 0, 0);
    let mut third = server.connect();
    let mut big = upload_head("/cgi-bin/store.cgi");
    big.extend_from_slice(&chunked(&pseudo_random_bytes(50 * 1024, 4), &[8192]));
    third.send(&big);
    third.read_response().assert_error_page(413);
    third.expect_closed();
    wait_for_bodies(&server, 0, 0);
}

fn a_large_chunked_upload_arrives_byte_exact(backend: &str) {
    let site = spool_site();
    let spool = site.outside().join("spool");
    fs::create_dir_all(&spool).expect("create the spool directory");
    let spool_arg = spool.to_string_lossy().into_owned();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &[
            "--cgi-spool-dir",
            &spool_arg,
            "--cgi-timeout",
            "300",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let body = pseudo_random_bytes(8 * 1024 * 1024 + 17, 21);
    let mut raw = upload_head("/cgi-bin/store.cgi");
    raw.extend_from_slice(&chunked(&body, &[65_537, 3, 1_000_003, 16_384]));
    let mut conn = server.connect();
    conn.send(&raw);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), format!("{}\n", body.len()));
    let stored = fs::read(site.outside().join("upload.bin")).expect("read the stored upload");
    assert_bytes_eq("the body the script stored", &stored, &body);
    let left: Vec<_> = fs::read_dir(&spool)
        .expect("list the spool directory")
        .collect();
    assert!(left.is_empty(), "spool files left with names: {left:?}");
    wait_for_bodies(&server, 0, 0);
}

fn slow_content_length_uploads_take_no_script_slots(backend: &str) {
    let site = spool_site();
    let reaper = Reaper::new(&site);
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &["--cgi-max-procs", "2", "--status-path", STATUS_PATH],
    );
    // Twice as many uploads as slots, each stopped 2 bytes short.
    let mut uploads: Vec<Connection> = (0..4)
        .map(|_| {
            let mut conn = server.connect();
            let mut raw = length_head("/cgi-bin/echo.cgi", 7);
            raw.extend_from_slice(b"hello");
            conn.send(&raw);
            conn
        })
        .collect();
    // Until every upload is accounted for, as a body being collected or
    // as a script (a slot), with all the bytes sent in the former case.
    let mut status = serde_json::Value::Null;
    let settled = poll_until(DEADLINE, || {
        status = status_json(&server, STATUS_PATH);
        let bodies = status_number(&status, "/cgi_bodies");
        let running = status_number(&status, "/cgi_running");
        running > 0 || (bodies == 4 && status_number(&status, "/cgi_spooled_bytes") == 20)
    });
    assert!(settled, "the uploads never settled: {status}");
    assert_eq!(
        status_number(&status, "/cgi_running"),
        0,
        "unfinished uploads took script slots: {status}"
    );
    assert!(
        reaper.running().is_empty(),
        "scripts started before their bodies were whole: {:#?}",
        reaper.running()
    );
    // A script still runs for everyone else meanwhile.
    let response = server.connect().get_dechunked("/cgi-bin/hello.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "hello\n");
    // Each upload, once complete, gets its script and CONTENT_LENGTH.
    for (i, conn) in uploads.iter_mut().enumerate() {
        conn.send(format!("-{i}").as_bytes());
        let response = conn.read_response_dechunked();
        response.assert_status(200);
        assert_eq!(response.body_text(), format!("7\nhello-{i}"));
    }
    wait_for_bodies(&server, 0, 0);
}

fn a_stalled_content_length_body_gets_408(backend: &str) {
    let site = spool_site();
    let reaper = Reaper::new(&site);
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &["--cgi-body-timeout", "1", "--status-path", STATUS_PATH],
    );
    let mut conn = server.connect();
    let mut raw = length_head("/cgi-bin/echo.cgi", 16);
    raw.extend_from_slice(b"only part of");
    conn.send(&raw);
    conn.read_response().assert_error_page(408);
    conn.expect_closed();
    wait_for_bodies(&server, 0, 0);
    assert!(
        reaper.running().is_empty(),
        "a script started for a body that never came: {:#?}",
        reaper.running()
    );
}

fn content_length_bodies_past_the_bounds_are_refused(backend: &str) {
    let site = spool_site();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &[
            "--cgi-spool-max",
            "64K",
            "--cgi-max-body",
            "48K",
            "--status-path",
            STATUS_PATH,
        ],
    );
    // 40K of a 41K body: held in the spool, which has 24K left.
    let body = pseudo_random_bytes(41 * 1024, 5);
    let (part, rest) = body.split_at(40 * 1024);
    let mut raw = length_head("/cgi-bin/store.cgi", body.len());
    raw.extend_from_slice(part);
    let mut first = server.connect();
    first.send(&raw);
    wait_for_bodies(&server, 1, part.len() as u64);
    // A second body of the same size would pass the shared bound.
    let mut second = server.connect();
    second.send(&raw);
    let response = second.read_response();
    response.assert_error_page(503);
    assert_eq!(response.header("Retry-After"), Some("1"));
    second.expect_closed();
    // The first is untouched and completes.
    first.send(rest);
    let response = first.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), format!("{}\n", body.len()));
    let stored = fs::read(site.outside().join("upload.bin")).expect("read the stored upload");
    assert_bytes_eq("the body the script stored", &stored, &body);
    // Past --cgi-max-body: 413 on the head alone.
    wait_for_bodies(&server, 0, 0);
    let mut third = server.connect();
    third.send(&length_head("/cgi-bin/store.cgi", 50 * 1024));
    third.read_response().assert_error_page(413);
    third.expect_closed();
    wait_for_bodies(&server, 0, 0);
}

fn a_large_content_length_upload_goes_through_the_spool(backend: &str) {
    let site = spool_site();
    let reaper = Reaper::new(&site);
    let spool = site.outside().join("spool");
    fs::create_dir_all(&spool).expect("create the spool directory");
    let spool_arg = spool.to_string_lossy().into_owned();
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &[
            "--cgi-spool-dir",
            &spool_arg,
            "--cgi-timeout",
            "300",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let body = pseudo_random_bytes(8 * 1024 * 1024 + 17, 22);
    let (part, rest) = body.split_at(body.len() - 17);
    let mut raw = length_head("/cgi-bin/store.cgi", body.len());
    raw.extend_from_slice(part);
    let mut conn = server.connect();
    conn.send(&raw);
    // All but the last 17 bytes wait in the spool (far past its memory
    // part, so in its file), and no script runs yet.
    let status = wait_for_bodies(&server, 1, part.len() as u64);
    assert_eq!(status_number(&status, "/cgi_running"), 0, "{status}");
    assert!(reaper.running().is_empty(), "{:#?}", reaper.running());
    conn.send(rest);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), format!("{}\n", body.len()));
    let stored = fs::read(site.outside().join("upload.bin")).expect("read the stored upload");
    assert_bytes_eq("the body the script stored", &stored, &body);
    let left: Vec<_> = fs::read_dir(&spool)
        .expect("list the spool directory")
        .collect();
    assert!(left.is_empty(), "spool files left with names: {left:?}");
    wait_for_bodies(&server, 0, 0);
}

per_backend!(
    slow_chunked_uploads_take_no_script_slots,
    slow_content_length_uploads_take_no_script_slots,
    a_stalled_content_length_body_gets_408,
    content_length_bodies_past_the_bounds_are_refused,
    a_large_content_length_upload_goes_through_the_spool,
    a_stalled_chunked_body_gets_408,
    bodies_past_the_bounds_are_refused,
    a_large_chunked_upload_arrives_byte_exact,
);

//! Byte-exact static files: every static file under `www/` plus generated
//! files of 0 B, 1 B, 64 KiB, 1 MiB, 10 MiB and 100 MiB come back exactly,
//! fetched on a new connection each, in sequence over one keep-alive
//! connection, and pipelined (all requests written at once, responses read
//! in order), under each event backend; also by 12 concurrent clients on a
//! cold cache, and with `--inline-max 1K --helpers 1`. Concurrent first
//! requests for one path share one helper lookup: with the lookup held
//! at a gate (`AMPED_TEST_HELPER_GATE`), once the status page has counted
//! every request's cache miss it shows exactly one lookup in flight.

use std::thread;

use tests::docroot::ServedFile;
use tests::http_client::request_bytes;
use tests::procfs::poll_until;
use tests::status::{status_json, status_number};
use tests::{
    assert_bytes_eq, per_backend, site_docroot, www_docroot, Connection, HelperGate, Response,
    ServerProcess, DEADLINE,
};

fn check_file(file: &ServedFile, response: &Response) {
    response.assert_status(200);
    assert_eq!(
        response.content_length(),
        Some(file.size),
        "Content-Length of {}:\n{}",
        file.url_path,
        response.head_text()
    );
    assert_bytes_eq(&file.url_path, &response.body, &file.contents());
}

fn files() -> Vec<ServedFile> {
    let files = www_docroot().all_files();
    assert!(
        files.iter().any(|f| f.size == 100 * 1024 * 1024),
        "the 100 MiB file is part of the set"
    );
    files
}

fn each_file_on_a_new_connection(backend: &str) {
    let server = ServerProcess::serve(&www_docroot().root, backend);
    for file in files() {
        let response = server.connect().get(&file.url_path);
        check_file(&file, &response);
    }
}

fn all_files_on_one_keepalive_connection(backend: &str) {
    let server = ServerProcess::serve(&www_docroot().root, backend);
    let mut conn = server.connect();
    for file in files() {
        let response = conn.get(&file.url_path);
        check_file(&file, &response);
        assert!(
            !response.connection_has("close"),
            "HTTP/1.1 keep-alive expected after {}:\n{}",
            file.url_path,
            response.head_text()
        );
    }
}

fn all_files_pipelined(backend: &str) {
    let server = ServerProcess::serve(&www_docroot().root, backend);
    let files = files();
    let mut conn = server.connect();
    let requests: String = files
        .iter()
        .map(|f| request_bytes("GET", &f.url_path, &[]))
        .collect();
    conn.send(requests.as_bytes());
    for (i, file) in files.iter().enumerate() {
        let response = conn.try_read_response(false).unwrap_or_else(|e| {
            panic!(
                "pipelined response {} of {} ({}): {e}",
                i + 1,
                files.len(),
                file.url_path
            )
        });
        check_file(file, &response);
    }
    assert!(
        conn.buffered().is_empty(),
        "bytes after the last pipelined response"
    );
    // The connection is still usable afterwards.
    let last = &files[0];
    check_file(last, &conn.get(&last.url_path));
}

fn concurrent_clients_get_identical_bytes(backend: &str) {
    // A cold server: the first requests for each path arrive together and
    // share one helper lookup.
    let server = ServerProcess::serve(&www_docroot().root, backend);
    let files: Vec<ServedFile> = www_docroot()
        .generated
        .iter()
        .filter(|f| f.size > 0 && f.size <= 10 * 1024 * 1024)
        .cloned()
        .collect();
    let expected: Vec<Vec<u8>> = files.iter().map(ServedFile::contents).collect();
    thread::scope(|scope| {
        for client in 0..12 {
            let (server, files, expected) = (&server, &files, &expected);
            scope.spawn(move || {
                let mut conn = server.connect();
                // Each client walks the files from a different starting point.
                for k in 0..files.len() {
                    let i = (client + k) % files.len();
                    let response = conn.get(&files[i].url_path);
                    response.assert_status(200);
                    assert_bytes_eq(
                        &format!("client {client}: {}", files[i].url_path),
                        &response.body,
                        &expected[i],
                    );
                }
            });
        }
    });
}

fn small_inline_max_and_one_helper(backend: &str) {
    // Nearly every file goes the descriptor/sendfile way, through one helper.
    let server = ServerProcess::serve_with(
        &www_docroot().root,
        backend,
        &["--inline-max", "1K", "--helpers", "1"],
    );
    let mut conn = server.connect();
    for file in files().iter().filter(|f| f.size <= 10 * 1024 * 1024) {
        check_file(file, &conn.get(&file.url_path));
    }
}

/// Clients asking for one uncached path at once.
const SHARED_CLIENTS: u64 = 8;

fn concurrent_misses_share_one_lookup(backend: &str) {
    let site = site_docroot();
    let expected = site.file("slow.html");
    let gate = HelperGate::new("shared-lookup");
    let server = gate.serve(&site.root, backend, "slow");
    let misses_before = status_number(&status_json(&server, "/server-status"), "/cache/misses");
    let mut clients: Vec<Connection> = (0..SHARED_CLIENTS)
        .map(|_| {
            let mut conn = server.connect();
            conn.send(request_bytes("GET", "/slow.html", &[]).as_bytes());
            conn
        })
        .collect();
    // Every request has looked in the cache (and missed) once the miss
    // counter has gone up by the number of clients; each miss either
    // started the lookup or joined it.
    let mut status = status_json(&server, "/server-status");
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(&server, "/server-status");
            status_number(&status, "/cache/misses") >= misses_before + SHARED_CLIENTS
        }),
        "the {SHARED_CLIENTS} requests never all reached the cache: {status}"
    );
    assert_eq!(
        status_number(&status, "/helper_lookups_in_flight"),
        1,
        "{SHARED_CLIENTS} misses for one path while its lookup is held: {status}"
    );
    assert!(
        clients.iter().all(|c| !c.has_pending_bytes()),
        "an answer came while the one lookup was held at the gate"
    );
    gate.open();
    for (i, conn) in clients.iter_mut().enumerate() {
        let response = conn.read_response();
        response.assert_status(200);
        assert_bytes_eq(
            &format!("client {i}: /slow.html"),
            &response.body,
            &expected,
        );
    }
}

per_backend!(
    concurrent_misses_share_one_lookup,
    each_file_on_a_new_connection,
    all_files_on_one_keepalive_connection,
    all_files_pipelined,
    concurrent_clients_get_identical_bytes,
    small_inline_max_and_one_helper,
);

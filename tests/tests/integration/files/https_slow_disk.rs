//! Never waiting on the disk over HTTPS, under each event backend: cold
//! files on a slow FUSE disk (slowfs, 25 ms in every read, `direct_io`;
//! see `files/slow_disk.rs`) download over HTTPS with curl, every byte
//! exact, while a cached page keeps its latency, fetched again and again
//! on one kept-alive connection over plain HTTP (this process's client)
//! and over HTTPS (Python's `ssl`): each fetch under 250 ms, the bound
//! `files/slow_disk.rs` explains. A TLS connection cannot use `sendfile`,
//! so the server encrypts file bytes itself: those of cold windows must
//! still come from the helpers (`/send/windows_by_helpers` and
//! `/send/bytes_by_helpers` cover every cold byte, no window sent
//! straight), never from a read in the loop.
//!
//! Without FUSE these fail saying what to install, unless
//! `AMPED_TESTS_NO_FUSE=1` says skipping them is intended.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::slow_disk::{SlowSite, SMALL_HTML};
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::tls::{make_certs, run_python, serve_tls, TestCerts, CURL};
use tests::{assert_bytes_eq, per_backend, run_with_deadline, Connection, TempDocroot, DEADLINE};

const MIB: usize = 1 << 20;
/// As `files/slow_disk.rs`'s latency tests.
const DELAY_MS: u32 = 25;
const CACHED_BOUND: Duration = Duration::from_millis(250);
const MAX_CACHED_REQUESTS: u32 = 20_000;

/// Fetches `/small.html` over a kept-alive TLS connection (a new one when
/// the server says `Connection: close`) until `STOP` exists (or 20 s, or
/// 20000 times), timing each; prints a JSON object: how many, the slowest
/// in ms, the first wrong answer if any, and the connections used.
const CACHED_CLIENT: &str = r#"
import json, os, socket, ssl, sys, time

port, cafile, stop, expected = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
ctx = ssl.create_default_context(cafile=cafile)

def connect():
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname="localhost")

def more(conn):
    data = conn.recv(65536)
    if not data:
        raise SystemExit("the server closed a kept-alive connection mid-response")
    return data

conn = connect()
request = b"GET /small.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
pending = b""
count, slowest, wrong, connections = 0, 0.0, None, 1
began = time.monotonic()
while not os.path.exists(stop) and count < 20000 and time.monotonic() - began < 20:
    start = time.monotonic()
    conn.sendall(request)
    while b"\r\n\r\n" not in pending:
        pending += more(conn)
    head, pending = pending.split(b"\r\n\r\n", 1)
    length, close = 0, False
    for field in head.split(b"\r\n")[1:]:
        name, value = field.split(b":", 1)
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
    while len(pending) < length:
        pending += more(conn)
    body, pending = pending[:length], pending[length:]
    slowest = max(slowest, time.monotonic() - start)
    if wrong is None and (not head.startswith(b"HTTP/1.1 200 ") or body != expected):
        wrong = (head + b"\r\n\r\n" + body).decode("latin-1")
    count += 1
    if close:
        conn.close()
        conn, pending, connections = connect(), b"", connections + 1
print(json.dumps({"count": count, "slowest_ms": slowest * 1000, "wrong": wrong,
                  "connections": connections}))
"#;

/// Downloads `url_path` over HTTPS with curl into `out` in a thread, and
/// checks every byte against `bytes`.
fn download(
    port: u16,
    certs: &TestCerts,
    url_path: &str,
    bytes: Vec<u8>,
    out: PathBuf,
) -> JoinHandle<()> {
    let ca = certs.ca.clone();
    let url = format!("https://localhost:{port}{url_path}");
    thread::spawn(move || {
        let resolve = format!("localhost:{port}:127.0.0.1");
        let args = [
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "--cacert",
            ca.to_str().expect("utf-8"),
            "--resolve",
            &resolve,
            "-o",
            out.to_str().expect("utf-8"),
            &url,
        ];
        let run = run_with_deadline(Path::new(CURL), &args, 2 * DEADLINE);
        assert!(run.status.success(), "curl {url}: {}", run.stderr);
        let got = std::fs::read(&out).expect("curl's download");
        assert_bytes_eq(&url, &got, &bytes);
    })
}

fn cold_files_over_https_never_hold_up_cached_requests(backend: &str) {
    let sizes = [4 * MIB, 6 * MIB, 8 * MIB];
    let Some(site) = SlowSite::new(&format!("https-{backend}"), &sizes, DELAY_MS) else {
        return;
    };
    let scratch = TempDocroot::new(&format!("https-slow-{backend}"));
    let outside = scratch.outside();
    let certs = make_certs(&outside, "a");
    let server = serve_tls(
        site.root(),
        &certs,
        backend,
        &["--status-path", STATUS_PATH],
    );
    let addr = server.addr();
    let tls_port = server.tls_port();
    // The page is cached before the clocks start.
    let mut warm = server.connect();
    warm.get("/small.html").assert_status(200);

    let done = Arc::new(AtomicBool::new(false));
    let plain = {
        let done = done.clone();
        thread::spawn(move || {
            let mut conn = Connection::connect(addr);
            let (mut count, mut slowest) = (0u32, Duration::ZERO);
            while !done.load(Ordering::Relaxed) && count < MAX_CACHED_REQUESTS {
                let start = Instant::now();
                let response = conn.get("/small.html");
                slowest = slowest.max(start.elapsed());
                response.assert_status(200);
                assert_bytes_eq("/small.html over HTTP", &response.body, SMALL_HTML);
                count += 1;
                if response.connection_has("close") {
                    conn = Connection::connect(addr);
                }
            }
            (count, slowest)
        })
    };
    let stop = outside.join("stop");
    let over_tls = {
        let (outside, stop, ca) = (outside.clone(), stop.clone(), certs.ca.clone());
        thread::spawn(move || {
            let expected = String::from_utf8(SMALL_HTML.to_vec()).expect("ASCII");
            run_python(
                &outside,
                "cached.py",
                CACHED_CLIENT,
                &[
                    &tls_port.to_string(),
                    ca.to_str().expect("utf-8"),
                    stop.to_str().expect("utf-8"),
                    &expected,
                ],
            )
        })
    };

    let downloads: Vec<_> = site
        .files()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            download(
                tls_port,
                &certs,
                &f.url_path,
                f.bytes.clone(),
                outside.join(format!("download{i}.bin")),
            )
        })
        .collect();
    let mut failed = None;
    for d in downloads {
        if let Err(e) = d.join() {
            failed.get_or_insert(e);
        }
    }
    done.store(true, Ordering::Relaxed);
    std::fs::write(&stop, b"").expect("the stop file");
    let plain = plain.join();
    let over_tls = over_tls.join();
    if let Some(e) = failed {
        std::panic::resume_unwind(e);
    }
    let (plain_count, plain_slowest) = plain.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let over_tls = over_tls.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        over_tls.status.success(),
        "the HTTPS client of the cached page failed: {}",
        over_tls.combined()
    );
    let tls: Value = serde_json::from_str(over_tls.stdout.trim())
        .unwrap_or_else(|e| panic!("the HTTPS client's output ({e}): {}", over_tls.stdout));
    assert!(
        tls["wrong"].is_null(),
        "a wrong answer over HTTPS: {}",
        tls["wrong"]
    );
    let tls_count = tls["count"].as_u64().expect("count");
    let tls_slowest = Duration::from_secs_f64(tls["slowest_ms"].as_f64().expect("ms") / 1000.0);

    assert!(plain_count > 0, "no cached request over HTTP ran");
    assert!(tls_count > 0, "no cached request over HTTPS ran");
    for (what, count, slowest) in [
        ("HTTP", u64::from(plain_count), plain_slowest),
        ("HTTPS", tls_count, tls_slowest),
    ] {
        assert!(
            slowest <= CACHED_BOUND,
            "a cached /small.html over {what} took {slowest:?} (of {count}) while {} cold files \
             came over HTTPS off a {DELAY_MS} ms-per-read disk; the bound is {CACHED_BOUND:?}",
            sizes.len()
        );
    }

    let status = status_json(&server, STATUS_PATH);
    let total: u64 = site.files().iter().map(|f| f.bytes.len() as u64).sum();
    let windows = status_number(&status, "/send/windows_by_helpers");
    let bytes = status_number(&status, "/send/bytes_by_helpers");
    let straight = status_number(&status, "/send/windows_straight");
    assert_eq!(
        straight, 0,
        "windows of never-resident files were sent straight: {status}"
    );
    assert!(windows > 0, "no window was read by a helper: {status}");
    assert!(
        bytes >= total,
        "helpers read {bytes} bytes of the {total} cold bytes sent over HTTPS: {status}"
    );
    eprintln!(
        "{backend}: cached over HTTP {plain_count}, slowest {plain_slowest:?}; over HTTPS \
         {tls_count}, slowest {tls_slowest:?}; helpers read {windows} windows, {bytes} bytes \
         for {total}"
    );
}

per_backend!(cold_files_over_https_never_hold_up_cached_requests);

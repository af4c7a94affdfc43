//! Bad input on the HTTPS port, under each event backend: what nginx does
//! with it, and nothing is held.
//!
//! - bytes that are neither a TLS record nor plain HTTP get a fatal TLS
//!   alert and the connection closes; the status page counts a `decode`
//!   error for each, and nothing else;
//! - a handshake message too large to be buffered (its header claims
//!   megabytes) gets an alert too, not a silent close;
//! - a record cut short, then the client's half-close: the server closes
//!   at once (an `incomplete` handshake), it does not wait for the rest;
//! - half a ClientHello (or nothing at all) and then silence: closed after
//!   `--header-timeout`, not before;
//! - 2,000 half-open handshakes against `--max-connections 500`: the
//!   server never holds more than 500, its memory hardly grows, every one
//!   is closed in the end (the excess at once: the server accepts and
//!   drops them, as there is no way to say why before a handshake), and a
//!   real client is served afterwards;
//! - a close by the server ends with `close_notify` before the TCP FIN
//!   (Python's `ssl`, made strict about EOF, reads a clean end), and a
//!   client that leaves without `close_notify` after a complete exchange
//!   is no TLS error.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tests::procfs::{poll_until, vm_rss_bytes};
use tests::status::{open_connections_after_a_turn, STATUS_PATH};
use tests::tls::{
    curl_https, https_url, make_certs, serve_tls, tls_error_count, tls_status, TestCerts,
};
use tests::{per_backend, run_with_deadline, ServerProcess, TempDocroot, DEADLINE};

/// Debian's Python, which `./test` installs (for the slow disk's fusepy).
const PYTHON: &str = "/usr/bin/python3";
/// How long a read waits for a close that should come at once: far less
/// than the default `--header-timeout` (20 s), so that a server that
/// waits for more input instead of closing fails here.
const AT_ONCE: Duration = Duration::from_secs(8);
/// Timeouts are measured from before the event that starts the server's
/// timer, so nothing may close before the timeout less this much...
const EARLY_SLACK: Duration = Duration::from_millis(100);
/// ... and the close must have come this long after it (a loaded 2-core
/// machine can keep the server or this test off the CPU for seconds).
const LATE_SLACK: Duration = Duration::from_secs(8);
/// The body every site here serves as `index.html`.
const INDEX: &[u8] = b"<h1>bad input</h1>\n";
/// The start of a ClientHello: a handshake record claiming 512 bytes, a
/// ClientHello claiming 508, its version and 26 of its 32 random bytes;
/// the rest never comes.
const PARTIAL_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\
    abcdefghijklmnopqrstuvwxyz";

/// A site, a certificate for `localhost` and a server with HTTPS and the
/// status page, plus `extra` arguments.
fn bad_input_site(
    tag: &str,
    backend: &str,
    extra: &[&str],
) -> (TempDocroot, TestCerts, ServerProcess) {
    let site = TempDocroot::new(tag);
    site.write("index.html", INDEX);
    let certs = make_certs(&site.outside(), "a");
    let mut args = vec!["--status-path", STATUS_PATH];
    args.extend_from_slice(extra);
    let server = serve_tls(site.path(), &certs, backend, &args);
    (site, certs, server)
}

fn connect_tls_port(server: &ServerProcess) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.tls_port())).expect("connect to the TLS port")
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// An orderly FIN.
    Eof,
    /// A reset (it closed with input it had not read).
    Reset,
}

/// Everything the server sends until it closes; panics if it has not
/// closed within `wait`.
fn read_until_closed(stream: &mut TcpStream, wait: Duration, what: &str) -> (Vec<u8>, Ending) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = wait
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return (got, Ending::Eof),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, Ending::Reset),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "{what}: the server had not closed after {:?} (received {got:02x?})",
                    start.elapsed()
                )
            }
            Err(e) => panic!("{what}: read: {e}"),
        }
    }
}

/// The description of the one fatal TLS alert record that `bytes` must
/// be: content type 21 (alert), a TLS 1.x version, length 2, level 2.
fn fatal_alert(bytes: &[u8], what: &str) -> u8 {
    match bytes {
        [0x15, 0x03, 0x01..=0x03, 0x00, 0x02, 0x02, description] => *description,
        _ => panic!("{what}: expected one fatal TLS alert record, got {bytes:02x?}"),
    }
}

/// `len` bytes from a fixed xorshift sequence: noise, the same each run.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The sum of every TLS error counter but `except`.
fn other_errors(tls: &serde_json::Value, except: &str) -> u64 {
    let errors = tls
        .get("errors")
        .and_then(serde_json::Value::as_object)
        .unwrap_or_else(|| panic!("no tls errors object: {tls}"));
    errors
        .iter()
        .filter(|(kind, _)| kind.as_str() != except)
        .map(|(_, n)| n.as_u64().expect("a count"))
        .sum()
}

/// Waits until the status page shows no TLS session open (the server has
/// dropped every one it was closing).
fn wait_for_no_tls_open(server: &ServerProcess) -> serde_json::Value {
    let mut tls = serde_json::Value::Null;
    let closed = poll_until(DEADLINE, || {
        tls = tls_status(server);
        tls["open"] == 0
    });
    assert!(closed, "TLS sessions stay open: {tls}");
    tls
}

fn garbage_gets_an_alert_and_a_close(backend: &str) {
    let (_site, _certs, server) = bad_input_site("https-garbage", backend, &[]);
    let before = tls_status(&server);
    let mut oversized = b"\x16\x03\x01\xff\xff".to_vec();
    oversized.extend(noise(64));
    let mut noisy = vec![0x16];
    noisy.extend(noise(500));
    let cases: [(&str, Vec<u8>); 5] = [
        ("a handshake record longer than TLS allows", oversized),
        (
            "a handshake record holding an unknown message type",
            b"\x16\x03\x01\x00\x08\x63\x00\x00\x04abcd".to_vec(),
        ),
        (
            "a ClientHello with nonsense inside",
            b"\x16\x03\x01\x00\x08\x01\x00\x00\x04abcd".to_vec(),
        ),
        (
            "binary that is no record (nor a plain HTTP method)",
            noise(300).iter().map(|b| b & 0x3f).collect(),
        ),
        ("0x16 then noise", noisy),
    ];
    for (what, bytes) in &cases {
        let mut stream = connect_tls_port(&server);
        stream.write_all(bytes).expect("send");
        let (answer, ending) = read_until_closed(&mut stream, AT_ONCE, what);
        fatal_alert(&answer, what);
        assert_eq!(ending, Ending::Eof, "{what}: not an orderly close");
    }
    let after = tls_status(&server);
    assert_eq!(
        tls_error_count(&after, "decode") - tls_error_count(&before, "decode"),
        cases.len() as u64,
        "one decode error for each: {after}"
    );
    assert_eq!(
        other_errors(&after, "decode"),
        other_errors(&before, "decode"),
        "only decode errors: {after}"
    );
}

/// A handshake message whose header claims more than rustls buffers
/// (64 KiB; here 0x656c6c bytes, the letters of "hello" read as a
/// handshake header) is a decode error like the others, and nginx
/// (OpenSSL: "excessive message size") answers it with an alert too.
fn an_oversized_handshake_message_gets_an_alert(backend: &str) {
    let (_site, _certs, server) = bad_input_site("https-huge-message", backend, &[]);
    let mut stream = connect_tls_port(&server);
    stream
        .write_all(b"\x16\x03\x01\x00\x05hello")
        .expect("send");
    let what = "a handshake message claiming 6 MB";
    let (answer, _) = read_until_closed(&mut stream, AT_ONCE, what);
    fatal_alert(&answer, what);
    assert_eq!(tls_error_count(&tls_status(&server), "decode"), 1);
}

/// A bad record followed by more bytes than the server reads before it
/// gives up: the alert still arrives and the close is an orderly FIN, not
/// a reset that could lose the alert (the server lingers, reading and
/// dropping the rest, as after an HTTP error).
fn an_alert_is_not_lost_under_unread_input(backend: &str) {
    let (_site, _certs, server) = bad_input_site("https-alert-linger", backend, &[]);
    let mut stream = connect_tls_port(&server);
    let mut garbage = b"\x16\x03\x01\x00\x05hello".to_vec();
    garbage.extend(noise(256 * 1024));
    // Sent from another thread: the server may stop reading at any point.
    let mut sender = stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        let _ = sender.write_all(&garbage);
        let _ = sender.shutdown(std::net::Shutdown::Write);
    });
    let what = "a bad record with 256 KiB behind it";
    let (answer, ending) = read_until_closed(&mut stream, AT_ONCE, what);
    sending.join().expect("the sender");
    fatal_alert(&answer, what);
    assert_eq!(ending, Ending::Eof, "{what}: the close was a reset");
}

fn a_truncated_record_then_half_close_is_closed_at_once(backend: &str) {
    let (_site, _certs, server) = bad_input_site("https-truncated", backend, &[]);
    let mut stream = connect_tls_port(&server);
    stream.write_all(PARTIAL_HELLO).expect("send");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let what = "a record cut short, then a half-close";
    let (answer, _) = read_until_closed(&mut stream, AT_ONCE, what);
    if !answer.is_empty() {
        fatal_alert(&answer, what);
    }
    drop(stream);
    let tls = wait_for_no_tls_open(&server);
    assert_eq!(tls_error_count(&tls, "incomplete"), 1, "{tls}");
    assert_eq!(other_errors(&tls, "incomplete"), 0, "{tls}");
}

fn a_stalled_handshake_is_closed_after_the_header_timeout(backend: &str) {
    let timeout = Duration::from_secs(2);
    let (_site, _certs, server) =
        bad_input_site("https-stalled", backend, &["--header-timeout", "2"]);
    // Both clocks start before the connections exist, so before the
    // server's timers.
    let start = Instant::now();
    let mut half = connect_tls_port(&server);
    half.write_all(PARTIAL_HELLO).expect("send");
    let mut silent = connect_tls_port(&server);
    for (what, stream) in [
        ("half a ClientHello", &mut half),
        ("a connection that sends nothing", &mut silent),
    ] {
        let (answer, _) = read_until_closed(stream, timeout + LATE_SLACK, what);
        let elapsed = start.elapsed();
        assert!(
            elapsed + EARLY_SLACK >= timeout,
            "{what}: closed after {elapsed:?}, before the {timeout:?} header timeout"
        );
        assert!(
            elapsed < timeout + LATE_SLACK,
            "{what}: closed only after {elapsed:?}"
        );
        if !answer.is_empty() {
            fatal_alert(&answer, what);
        }
    }
    drop((half, silent));
    let tls = wait_for_no_tls_open(&server);
    assert_eq!(
        tls_error_count(&tls, "incomplete"),
        1,
        "half a ClientHello is an incomplete handshake: {tls}"
    );
}

/// One flood at a time: the three backends' floods together would need
/// three times the descriptors in this process, and load a small machine
/// enough to blur what each one measures.
static FLOOD: Mutex<()> = Mutex::new(());

/// The server's open descriptors.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's /proc/PID/fd")
        .count()
}

fn many_half_open_handshakes_hold_no_more_than_the_bound(backend: &str) {
    const CLIENTS: usize = 2000;
    const MAX: usize = 500;
    const RSS_GROWTH: u64 = 64 << 20;
    let timeout = Duration::from_secs(2);
    let _one_at_a_time = FLOOD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = tests::raise_nofile_limit();
    assert!(
        limit >= (CLIENTS + 1024) as u64,
        "RLIMIT_NOFILE is {limit}: this test opens {CLIENTS} connections (raise the hard limit)"
    );
    let (site, certs, server) = bad_input_site(
        "https-many",
        backend,
        &["--max-connections", "500", "--header-timeout", "2"],
    );
    let pid = server.pid_t();
    let index = https_url(&server, "/index.html");
    let fetch = || curl_https(&site, &certs.ca, server.tls_port(), &[&index]);
    // One real handshake first, so that what it allocates once is in the
    // baseline.
    assert_eq!(fetch(), INDEX);
    wait_for_no_tls_open(&server);
    let fds_before = fd_count(pid);
    let rss_before = vm_rss_bytes(pid).expect("the server's VmRSS");
    let (mut peak_fds, mut peak_rss) = (fds_before, rss_before);
    let mut sample = || {
        peak_fds = peak_fds.max(fd_count(pid));
        peak_rss = peak_rss.max(vm_rss_bytes(pid).unwrap_or(0));
    };

    let start = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut stream = connect_tls_port(&server);
        // A refused connection may already be closed: the write may fail.
        let _ = stream.write_all(PARTIAL_HELLO);
        stream.set_nonblocking(true).expect("non-blocking");
        clients.push(Some(stream));
        if i % 50 == 0 {
            sample();
        }
    }
    // Every client's connection must end: refused at once or timed out.
    let mut scratch = [0u8; 256];
    let all_closed = poll_until(timeout + LATE_SLACK + DEADLINE, || {
        sample();
        for slot in clients.iter_mut() {
            let Some(stream) = slot else { continue };
            match stream.read(&mut scratch) {
                Ok(0) => *slot = None,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An alert (or anything) before the close is allowed; a
                // reset is a close.
                Ok(_) => {}
                Err(_) => *slot = None,
            }
        }
        clients.iter().all(Option::is_none)
    });
    let still_open = clients.iter().filter(|c| c.is_some()).count();
    assert!(
        all_closed,
        "{still_open} of {CLIENTS} half-open handshakes still open after {:?}",
        start.elapsed()
    );
    sample();
    // One more than the bound: the server refuses a client over it by
    // accepting it and closing it at once, so for that moment its
    // descriptor is open too.
    let held = peak_fds - fds_before;
    assert!(
        held <= MAX + 1,
        "the server held {held} more descriptors than before, with --max-connections {MAX}"
    );
    // Not a claim about the server: the test itself must have filled it,
    // or it proved nothing.
    assert!(
        held >= MAX / 5,
        "only {held} connections were ever held at once: the flood did not reach the bound"
    );
    let growth = peak_rss.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH,
        "the server's RSS grew by {growth} bytes ({rss_before} -> {peak_rss}) holding {held} handshakes"
    );
    // A real client is served now.
    assert_eq!(fetch(), INDEX, "a real client after the flood");
    let tls = wait_for_no_tls_open(&server);
    assert_eq!(open_connections_after_a_turn(&server), 1, "{tls}");
}

/// The Python client of the close_notify test: an HTTPS request with
/// `argv[4]` as its extra header lines; `close` mode reads to the end,
/// made strict about it (OpenSSL 3's `OP_IGNORE_UNEXPECTED_EOF`, which
/// Python sets, is cleared, and ragged EOFs are not suppressed), so that a
/// TCP FIN without `close_notify` raises; `leave` mode reads the whole
/// response and closes the descriptor (Python's `close()` sends no
/// `close_notify`). Prints what it received, then `END clean` or `END
/// ragged: ...`.
const CLOSE_NOTIFY_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, mode, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
ctx = ssl.create_default_context(cafile=ca)
ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
extra = b"Connection: close\r\n" if mode == "close" else b""
s.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n")
data = b""
ending = "clean"
try:
    while not (mode == "leave" and data.endswith(body)):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except ssl.SSLError as e:
    ending = "ragged: %s" % e
s.close()
sys.stdout.write(data.decode("latin-1") + "\nEND " + ending + "\n")
"#;

fn python_client(server: &ServerProcess, certs: &TestCerts, mode: &str) -> String {
    let port = server.tls_port().to_string();
    let ca = certs.ca.to_str().expect("utf-8");
    let body = std::str::from_utf8(INDEX).expect("utf-8");
    let output = run_with_deadline(
        Path::new(PYTHON),
        &["-c", CLOSE_NOTIFY_CLIENT, &port, ca, mode, body],
        DEADLINE,
    );
    assert!(
        output.status.success(),
        "python ({mode}): {}",
        output.combined()
    );
    output.stdout
}

fn close_notify_comes_before_the_fin(backend: &str) {
    let (_site, certs, server) = bad_input_site("https-close-notify", backend, &[]);
    let before = tls_status(&server);
    let closed = python_client(&server, &certs, "close");
    assert!(closed.starts_with("HTTP/1.1 200 OK\r\n"), "{closed}");
    assert!(closed.contains("Connection: close\r\n"), "{closed}");
    assert!(
        closed.ends_with(&format!("{}\nEND clean\n", String::from_utf8_lossy(INDEX))),
        "the server's close had no close_notify before its FIN: {closed}"
    );
    // A client that leaves without close_notify after a whole exchange.
    let left = python_client(&server, &certs, "leave");
    assert!(left.starts_with("HTTP/1.1 200 OK\r\n"), "{left}");
    assert!(left.ends_with("\nEND clean\n"), "{left}");
    let after = wait_for_no_tls_open(&server);
    assert_eq!(
        tls_status_number(&after, "full_handshakes")
            - tls_status_number(&before, "full_handshakes"),
        2,
        "both clients finished their handshakes: {after}"
    );
    assert_eq!(
        other_errors(&after, ""),
        other_errors(&before, ""),
        "a client leaving without close_notify was counted as a TLS error: {after}"
    );
}

fn tls_status_number(tls: &serde_json::Value, key: &str) -> u64 {
    tests::status::status_number(tls, &format!("/{key}"))
}

per_backend!(
    garbage_gets_an_alert_and_a_close,
    an_oversized_handshake_message_gets_an_alert,
    an_alert_is_not_lost_under_unread_input,
    a_truncated_record_then_half_close_is_closed_at_once,
    a_stalled_handshake_is_closed_after_the_header_timeout,
    many_half_open_handshakes_hold_no_more_than_the_bound,
    close_notify_comes_before_the_fin
);

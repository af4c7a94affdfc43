//! HTTPS with two more real clients.
//!
//! - Python's `ssl` module (OpenSSL underneath), trusting the test CA,
//!   SNI `localhost`, under each event backend: two requests one after the
//!   other on one kept-alive connection; two requests sent in one write
//!   (pipelined); and a request followed by the client's half-close, both
//!   as TLS means it (a `close_notify` alert, then the TCP write side shut)
//!   and as a careless client does it (the TCP write side shut with no
//!   alert). Every response's status line and body are checked exactly,
//!   and a half-closed connection must be answered, then ended by the
//!   server's own `close_notify`.
//! - Headless Chromium loads the example site (`www/`) over HTTPS, the
//!   test CA trusted, and its screenshot shows the page: the same pixels
//!   as its screenshot of the page over plain HTTP, with the page's own
//!   colours in it; the server's status page counted the TLS handshake and
//!   an HTTP/2 connection, and the access log has Chromium's requests for
//!   the page and its stylesheet as `HTTP/2.0` (h2 chosen by ALPN). Under epoll only: a browser
//!   start takes a second or more of CPU, and what is tested is the TLS
//!   path and the certificate chain, not the pollers (which the Python
//!   tests cover).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;
use tests::status::{status_json, status_number};
use tests::tls::{make_certs, run_python, serve_tls};
use tests::{per_backend, run_with_deadline, ServerProcess, TempDocroot, DEADLINE};

/// The client: `client.py PORT CAFILE MODE`, printing one JSON object:
/// the responses read (status line, headers, body as Latin-1 text) and how
/// the connection ended (`close_notify`, `eof`: TCP end with no alert, or
/// `open`: not waited for).
///
/// It drives OpenSSL through memory BIOs (`SSLObject`), so that it can
/// send `close_notify` and still read the answer, and shut the TCP write
/// side under a TLS session that goes on: `SSLSocket` can do neither.
const CLIENT: &str = r#"
import json, socket, ssl, sys

port, cafile, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")

def flush():
    data = outgoing.read()
    if data:
        sock.sendall(data)

def feed():
    data = sock.recv(65536)
    if data:
        incoming.write(data)
    else:
        incoming.write_eof()

while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush()
        feed()
flush()

def send(data):
    tls.write(data)
    flush()

pending = b""
ended = None

def read_more():
    """More plaintext into `pending`; False once the stream has ended."""
    global pending, ended
    if ended is not None:
        return False
    while True:
        try:
            data = tls.read(65536)
            if not data:
                ended = "close_notify"
                return False
            pending += data
            return True
        except ssl.SSLWantReadError:
            flush()
            feed()
        except ssl.SSLZeroReturnError:
            ended = "close_notify"
            return False
        except ssl.SSLEOFError:
            ended = "eof"
            return False

def response():
    global pending
    while b"\r\n\r\n" not in pending:
        if not read_more():
            raise SystemExit("the stream ended (%s) inside a head: %r" % (ended, pending))
    head, pending = pending.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(pending) < length:
        if not read_more():
            raise SystemExit("the stream ended (%s) inside a body" % ended)
    body, pending = pending[:length], pending[length:]
    return {"status": lines[0], "headers": headers, "body": body.decode("latin-1")}

def get(path):
    return ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()

responses = []
if mode == "keepalive":
    send(get("/index.html"))
    responses.append(response())
    send(get("/second.txt"))
    responses.append(response())
elif mode == "pipelined":
    send(get("/index.html") + get("/second.txt"))
    responses.append(response())
    responses.append(response())
elif mode in ("close_notify", "tcp_half_close"):
    send(get("/index.html"))
    if mode == "close_notify":
        try:
            tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify is written; the server's is still to come
        flush()
    sock.shutdown(socket.SHUT_WR)
    responses.append(response())
    while read_more():
        pass
else:
    raise SystemExit("unknown mode " + mode)
print(json.dumps({"responses": responses, "end": ended or "open", "extra": pending.decode("latin-1")}))
"#;

const INDEX: &str = "<h1>index over TLS</h1>\n";
const SECOND: &str = "the second file\n";

/// What the client saw.
struct Seen {
    responses: Vec<(String, BTreeMap<String, String>, String)>,
    end: String,
    extra: String,
}

fn run_client(site: &TempDocroot, server: &ServerProcess, ca: &Path, mode: &str) -> Seen {
    let port = server.tls_port().to_string();
    let out = run_python(
        &site.outside(),
        "client.py",
        CLIENT,
        &[&port, ca.to_str().expect("utf-8"), mode],
    );
    assert!(
        out.status.success(),
        "the Python client ({mode}) failed: {}{}",
        out.stdout,
        out.stderr
    );
    let seen: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the client's output ({e}): {}", out.stdout));
    let text = |v: &Value| v.as_str().expect("a string").to_owned();
    let responses = seen["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| {
            let headers = r["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            (text(&r["status"]), headers, text(&r["body"]))
        })
        .collect();
    Seen {
        responses,
        end: text(&seen["end"]),
        extra: text(&seen["extra"]),
    }
}

fn python_site(tag: &str, backend: &str) -> (TempDocroot, tests::tls::TestCerts, ServerProcess) {
    let site = TempDocroot::new(tag);
    site.write("index.html", INDEX.as_bytes());
    site.write("second.txt", SECOND.as_bytes());
    let certs = make_certs(&site.outside(), "a");
    let server = serve_tls(site.path(), &certs, backend, &[]);
    (site, certs, server)
}

fn assert_ok(what: &str, seen: &(String, BTreeMap<String, String>, String), body: &str) {
    assert_eq!(seen.0, "HTTP/1.1 200 OK", "{what}: {seen:?}");
    assert_eq!(seen.2, body, "{what}: the body");
}

fn python_keeps_one_connection_for_two_requests(backend: &str) {
    let (site, certs, server) = python_site("py-keepalive", backend);
    let seen = run_client(&site, &server, &certs.ca, "keepalive");
    assert_eq!(seen.responses.len(), 2);
    assert_ok("the first request", &seen.responses[0], INDEX);
    assert_ok("the second request", &seen.responses[1], SECOND);
    for (_, headers, _) in &seen.responses {
        assert_ne!(
            headers.get("connection").map(String::as_str),
            Some("close"),
            "a keep-alive request was answered with close: {headers:?}"
        );
    }
    assert_eq!(seen.extra, "", "bytes after the responses");
}

fn python_pipelines_two_requests_in_one_write(backend: &str) {
    let (site, certs, server) = python_site("py-pipelined", backend);
    let seen = run_client(&site, &server, &certs.ca, "pipelined");
    assert_eq!(seen.responses.len(), 2);
    assert_ok("the first pipelined request", &seen.responses[0], INDEX);
    assert_ok("the second pipelined request", &seen.responses[1], SECOND);
    assert_eq!(seen.extra, "", "bytes after the responses");
}

/// The client sends `close_notify` after its request (TLS's half-close:
/// in TLS 1.3 the other direction stays open), then shuts its TCP write
/// side: the server answers, then ends with its own `close_notify`.
fn python_close_notify_after_the_request_is_answered(backend: &str) {
    let (site, certs, server) = python_site("py-close-notify", backend);
    let seen = run_client(&site, &server, &certs.ca, "close_notify");
    assert_eq!(seen.responses.len(), 1);
    assert_ok("the request before close_notify", &seen.responses[0], INDEX);
    assert_eq!(
        seen.end, "close_notify",
        "the server did not end the half-closed connection with close_notify"
    );
    assert_eq!(seen.extra, "", "bytes after the response");
}

/// The client shuts its TCP write side after its request without any
/// alert: HTTP/1.1 framed the request, so it is answered like a plain
/// half-close.
fn python_tcp_half_close_after_the_request_is_answered(backend: &str) {
    let (site, certs, server) = python_site("py-half-close", backend);
    let seen = run_client(&site, &server, &certs.ca, "tcp_half_close");
    assert_eq!(seen.responses.len(), 1);
    assert_ok(
        "the request before the half-close",
        &seen.responses[0],
        INDEX,
    );
    assert_eq!(
        seen.end, "close_notify",
        "the server did not end the half-closed connection with close_notify"
    );
    assert_eq!(seen.extra, "", "bytes after the response");
}

per_backend!(
    python_keeps_one_connection_for_two_requests,
    python_pipelines_two_requests_in_one_write,
    python_close_notify_after_the_request_is_answered,
    python_tcp_half_close_after_the_request_is_answered,
);

/// Debian's Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Certutil, from Debian's libnss3-tools.
const CERTUTIL: &str = "/usr/bin/certutil";

/// A screenshot's pixels, RGBA.
struct Picture {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Picture {
    fn decode(path: &Path) -> Picture {
        let file = fs::File::open(path)
            .unwrap_or_else(|e| panic!("the screenshot {}: {e}", path.display()));
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("the PNG's pixels");
        buf.truncate(info.buffer_size());
        let rgba = match info.color_type {
            png::ColorType::Rgba => buf,
            png::ColorType::Rgb => buf
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            other => panic!("a screenshot in {other:?}"),
        };
        Picture {
            width: info.width,
            height: info.height,
            rgba,
        }
    }

    /// How many pixels are exactly `rgb`.
    fn count(&self, rgb: [u8; 3]) -> usize {
        self.rgba.chunks_exact(4).filter(|p| p[..3] == rgb).count()
    }
}

/// Runs headless Chromium on `url` with `home` as its home (where the NSS
/// database that trusts the test CA is) and a profile of its own, and
/// returns its screenshot's path.
fn screenshot(dir: &Path, home: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let shot = dir.join(format!("{name}.png"));
    let profile = dir.join(format!("profile-{name}"));
    let home_var = format!("HOME={}", home.display());
    let screenshot_arg = format!("--screenshot={}", shot.display());
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let out = run_with_deadline(
        Path::new("/usr/bin/env"),
        &[
            home_var.as_str(),
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            &profile_arg,
            &screenshot_arg,
            "--window-size=800,600",
            "--host-resolver-rules=MAP localhost 127.0.0.1",
            url,
        ],
        DEADLINE * 2,
    );
    assert!(
        shot.is_file(),
        "Chromium wrote no screenshot of {url} (a page that fails to load gets none; exit \
         {}):\n{}",
        out.status,
        out.stderr
    );
    shot
}

/// Chromium trusts the test CA through an NSS database in a home of its
/// own (what `certutil` writes and Chromium on Linux reads), rather than
/// `--ignore-certificate-errors-spki-list`: that flag would skip the
/// chain's verification for one key, where this checks what a browser
/// whose user trusts the CA checks: the chain the server sends, the name,
/// the dates.
#[test]
fn chromium_shows_the_example_site_over_https() {
    for (tool, package) in [(CHROMIUM, "chromium"), (CERTUTIL, "libnss3-tools")] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: apt-get install {package} (./test installs it)"
        );
    }
    let site = TempDocroot::with_www("chromium");
    let outside = site.outside();
    let certs = make_certs(&outside, "a");
    let access_log = outside.join("access.log");
    let server = serve_tls(
        site.path(),
        &certs,
        "epoll",
        &[
            "--status-path",
            "/server-status",
            "--access-log",
            access_log.to_str().expect("utf-8"),
        ],
    );

    let home = outside.join("home");
    let nssdb = home.join(".pki/nssdb");
    fs::create_dir_all(&nssdb).expect("the NSS database's directory");
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-t",
            "C,,",
            "-n",
            "amped-test",
            "-i",
            certs.ca.to_str().expect("utf-8"),
        ],
    ] {
        let out = run_with_deadline(Path::new(CERTUTIL), &args, DEADLINE);
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            out.combined()
        );
    }

    let https = screenshot(
        &outside,
        &home,
        "https",
        &format!("https://localhost:{}/", server.tls_port()),
    );
    let status = status_json(&server, "/server-status");
    assert!(
        status_number(&status, "/tls/full_handshakes") >= 1,
        "no TLS handshake counted: {status}"
    );
    // Chromium chose HTTP/2 by ALPN, for the page and its stylesheet.
    assert!(
        status_number(&status, "/http2/connections") >= 1,
        "no HTTP/2 connection counted: {status}"
    );
    let logged = fs::read_to_string(&access_log).unwrap_or_default();
    for path in ["/", "/style.css"] {
        assert!(
            logged
                .lines()
                .any(|l| l.contains(&format!("\"GET {path} HTTP/2.0\" 200 "))
                    && l.contains("HeadlessChrome")),
            "the access log has no HTTP/2 200 for Chromium's GET {path}:\n{logged}"
        );
    }
    let plain = screenshot(&outside, &home, "http", &server.url("/"));

    let (https, plain) = (Picture::decode(&https), Picture::decode(&plain));
    assert_eq!((https.width, https.height), (800, 600), "the window size");
    // The page: black heading text on white, its links in the default
    // link blue (#0000ee) with their underlines drawn solid, and the
    // `code` box's #f4f4f4 background from style.css. Chromium's error
    // pages ("Your connection is not private") use none of the last two.
    for (what, rgb, least) in [
        ("white background", [255, 255, 255], 100_000),
        ("black heading text", [0, 0, 0], 200),
        ("link blue (#0000ee)", [0, 0, 238], 50),
        ("the code box's #f4f4f4", [244, 244, 244], 200),
    ] {
        let n = https.count(rgb);
        eprintln!("{n} pixels of {what}");
        assert!(
            n >= least,
            "the HTTPS screenshot has {n} pixels of {what}, fewer than {least}: not the page"
        );
    }
    let differing = https
        .rgba
        .chunks_exact(4)
        .zip(plain.rgba.chunks_exact(4))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "the page over HTTPS and over HTTP differ in {differing} pixels"
    );
}

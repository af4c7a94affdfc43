//! HTTP/2 with real clients, under each event backend.
//!
//! - curl over cleartext with prior knowledge (`--http2-prior-knowledge`)
//!   and over TLS (`--http2`, h2 chosen by ALPN) gets, for a set of
//!   requests (a page, a 3 MiB file sent window by window, a range, a 304,
//!   a HEAD, gzip_static, a directory listing, a 404, the status page,
//!   `OPTIONS`, a 300 KB POST a script echoes back), the same
//!   status, the same body byte for byte and the same headers as over
//!   HTTP/1.1 (`Date` aside, and minus the fields HTTP/2 forbids), and
//!   curl says it spoke HTTP/2.
//! - nghttp fetches six files at once on one connection, each whole.
//! - The access log records the requests as `HTTP/2.0`; a script gets
//!   `SERVER_PROTOCOL=HTTP/2.0`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tests::docroot::pseudo_random_bytes;
use tests::status::STATUS_PATH;
use tests::tls::{make_certs, serve_tls, TestCerts, CURL};
use tests::{per_backend, run_with_deadline, ServerProcess, TempDocroot, DEADLINE};

const NGHTTP: &str = "/usr/bin/nghttp";
const BIG: usize = 3 << 20;
const ECHO: &str = "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\ncat\n";
/// A script that sends fields HTTP/2 forbids beside one of its own.
const HOP: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nConnection: keep-alive\\r\\nKeep-Alive: timeout=5\\r\\nUpgrade: h2c\\r\\nX-Mine: 1\\r\\n\\r\\nhop\\n'\n";
const ENV: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf 'protocol=%s https=%s\\n' \"$SERVER_PROTOCOL\" \"${HTTPS:-off}\"\n";

/// What one curl run got: the HTTP version it spoke, the status, the
/// headers (lowercase names) and the body.
#[derive(Debug)]
struct Got {
    version: String,
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn site(tag: &str) -> (TempDocroot, TestCerts) {
    let site = TempDocroot::new(tag);
    site.write(
        "index.html",
        b"<!DOCTYPE html><title>h2</title><p>over HTTP/2</p>\n",
    );
    site.write("big.bin", &pseudo_random_bytes(BIG, 21));
    site.write(
        "style.css",
        b"body { color: #123456 }\n".repeat(40).as_slice(),
    );
    let css = fs::read(site.path().join("style.css")).expect("style.css");
    site.write("style.css.gz", &gzip(&site, &css));
    site.write("docs/a.txt", b"a\n");
    site.write("docs/b.txt", b"b\n");
    for i in 0..6 {
        site.write(
            &format!("f{i}.bin"),
            &pseudo_random_bytes(20_000 + i * 7_000, i as u64),
        );
    }
    tests::cgi::write_executable(
        &site.path().join("cgi-bin/echo.cgi"),
        ECHO.as_bytes(),
        0o755,
    );
    tests::cgi::write_executable(&site.path().join("cgi-bin/env.cgi"), ENV.as_bytes(), 0o755);
    tests::cgi::write_executable(&site.path().join("cgi-bin/hop.cgi"), HOP.as_bytes(), 0o755);
    let certs = make_certs(&site.outside(), "h2");
    (site, certs)
}

fn gzip(site: &TempDocroot, bytes: &[u8]) -> Vec<u8> {
    let plain = site.outside().join("gz.in");
    fs::write(&plain, bytes).expect("write");
    let out = run_with_deadline(
        Path::new("/bin/gzip"),
        &["-kfn9", plain.to_str().expect("utf-8")],
        DEADLINE,
    );
    assert!(out.status.success(), "gzip: {}", out.stderr);
    fs::read(site.outside().join("gz.in.gz")).expect("gzip's output")
}

fn fetch(site: &TempDocroot, url: &str, args: &[&str]) -> Got {
    let (head, body) = (site.outside().join("head"), site.outside().join("body"));
    let _ = fs::remove_file(&body);
    let mut all = vec![
        "-s",
        "-D",
        head.to_str().expect("utf-8"),
        "-o",
        body.to_str().expect("utf-8"),
        "-w",
        "%{http_version}",
    ];
    all.extend_from_slice(args);
    all.push(url);
    let run = run_with_deadline(Path::new(CURL), &all, DEADLINE);
    assert!(run.status.success(), "curl {all:?}: {}", run.stderr);
    let head = fs::read_to_string(&head).expect("curl's head");
    // The last head (after a 100 Continue, if any).
    let last = head
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default();
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        version: run.stdout.trim().to_string(),
        status,
        headers,
        body: fs::read(&body).unwrap_or_default(),
    }
}

/// The requests compared, as curl arguments and a path.
fn requests(site: &TempDocroot, etag: &str) -> Vec<(String, Vec<String>)> {
    let post = site.outside().join("post.bin");
    fs::write(&post, pseudo_random_bytes(300_000, 5)).expect("post body");
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("/".into(), s(&[])),
        ("/big.bin".into(), s(&[])),
        ("/big.bin".into(), s(&["-r", "1000-70999"])),
        (
            "/index.html".into(),
            s(&["-H", &format!("If-None-Match: {etag}")]),
        ),
        ("/index.html".into(), s(&["-I"])),
        ("/style.css".into(), s(&["-H", "Accept-Encoding: gzip"])),
        ("/docs/".into(), s(&[])),
        ("/missing.html".into(), s(&[])),
        (STATUS_PATH.into(), s(&[])),
        ("/index.html".into(), s(&["-X", "OPTIONS"])),
        (
            "/cgi-bin/echo.cgi".into(),
            s(&[
                "--data-binary",
                &format!("@{}", post.display()),
                "-H",
                "Expect:",
            ]),
        ),
    ]
}

/// The headers that must agree: all but `Date` (another second) and the
/// fields only HTTP/1.1 has.
fn comparable(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "date" | "connection" | "keep-alive" | "transfer-encoding"
            )
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn same_as_http1(site: &TempDocroot, base1: &str, base2: &str, h2_args: &[&str], extra1: &[&str]) {
    let etag = fetch(site, &format!("{base1}/index.html"), extra1)
        .headers
        .get("etag")
        .cloned()
        .expect("an ETag");
    for (path, args) in requests(site, &etag) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut one = args.clone();
        one.extend_from_slice(extra1);
        one.push("--http1.1");
        let http1 = fetch(site, &format!("{base1}{path}"), &one);
        let mut two = args.clone();
        two.extend_from_slice(h2_args);
        let http2 = fetch(site, &format!("{base2}{path}"), &two);
        assert_eq!(
            http2.version, "2",
            "{path} {args:?}: curl spoke {}",
            http2.version
        );
        assert_eq!(http2.status, http1.status, "{path} {args:?}");
        // The status page counts the requests and differs between them;
        // curl writes a HEAD's head where the body would go.
        if path != STATUS_PATH && !args.contains(&"-I") {
            assert!(
                http2.body == http1.body,
                "{path} {args:?}: the bodies differ ({} and {} bytes)",
                http1.body.len(),
                http2.body.len()
            );
            assert_eq!(
                comparable(&http2.headers),
                comparable(&http1.headers),
                "{path} {args:?}"
            );
        }
    }
}

fn curl_with_prior_knowledge_gets_what_http1_gets(backend: &str) {
    let (site, _) = site("h2-curl");
    let log = site.outside().join("access.log");
    let server = ServerProcess::serve_with(
        site.path(),
        backend,
        &[
            "--gzip-static",
            "--dir-listing",
            "--status-path",
            STATUS_PATH,
            "--access-log",
            log.to_str().expect("utf-8"),
        ],
    );
    let base = format!("http://127.0.0.1:{}", server.port());
    same_as_http1(&site, &base, &base, &["--http2-prior-knowledge"], &[]);
    let env = fetch(
        &site,
        &format!("{base}/cgi-bin/env.cgi"),
        &["--http2-prior-knowledge"],
    );
    assert_eq!(
        String::from_utf8_lossy(&env.body),
        "protocol=HTTP/2.0 https=off\n"
    );
    let logged = poll_log(&log, "\"GET /big.bin HTTP/2.0\" 200 ");
    assert!(
        logged.contains("\"GET /big.bin HTTP/1.1\" 200 "),
        "{logged}"
    );
}

fn curl_over_tls_gets_h2_and_what_http1_gets(backend: &str) {
    let (site, certs) = site("h2-tls");
    let server = serve_tls(
        site.path(),
        &certs,
        backend,
        &[
            "--gzip-static",
            "--dir-listing",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let (ca, _, _) = certs.paths();
    let resolve = format!("localhost:{}:127.0.0.1", server.tls_port());
    let tls_args = ["--cacert", ca, "--resolve", &resolve];
    let base = format!("https://localhost:{}", server.tls_port());
    let mut h2 = tls_args.to_vec();
    h2.push("--http2");
    same_as_http1(&site, &base, &base, &h2, &tls_args);
    let env = fetch(&site, &format!("{base}/cgi-bin/env.cgi"), &h2);
    assert_eq!(
        String::from_utf8_lossy(&env.body),
        "protocol=HTTP/2.0 https=on\n"
    );
}

fn nghttp_fetches_several_files_on_one_connection(backend: &str) {
    let (site, _) = site("h2-nghttp");
    let server = ServerProcess::serve(site.path(), backend);
    let urls: Vec<String> = (0..6)
        .map(|i| format!("http://127.0.0.1:{}/f{i}.bin", server.port()))
        .collect();
    let mut args = vec!["-ns"];
    args.extend(urls.iter().map(String::as_str));
    let run = run_with_deadline(Path::new(NGHTTP), &args, DEADLINE);
    assert!(run.status.success(), "nghttp: {}{}", run.stdout, run.stderr);
    // Its statistics: one line a stream, `id end start process code size path`.
    for i in 0..6 {
        let size = 20_000 + i * 7_000;
        let line = run
            .stdout
            .lines()
            .find(|l| l.ends_with(&format!(" /f{i}.bin")))
            .unwrap_or_else(|| panic!("no stream for /f{i}.bin: {}", run.stdout));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(4), Some(&"200"), "{line}");
        let shown = fields.get(5).copied().unwrap_or_default();
        let expected = match size {
            n if n >= 1024 => format!("{}K", n / 1024),
            n => n.to_string(),
        };
        assert_eq!(shown, expected, "{line}");
    }
}

/// The access log once it holds `needle` (it is written in batches).
fn poll_log(log: &Path, needle: &str) -> String {
    let mut text = String::new();
    let found = tests::procfs::poll_until(DEADLINE, || {
        text = fs::read_to_string(log).unwrap_or_default();
        text.contains(needle)
    });
    assert!(found, "the access log never had {needle}: {text}");
    text
}

per_backend!(
    curl_with_prior_knowledge_gets_what_http1_gets,
    curl_over_tls_gets_h2_and_what_http1_gets,
    nghttp_fetches_several_files_on_one_connection,
);

//! `--redirect-to-https` and `--hsts`, under each event backend: a plain
//! listener answers every request with the same host, path and query on
//! the TLS port (301 for GET and HEAD, 308 for a POST, whose body is
//! dropped so the next request on the connection is read), curl follows
//! it to the page; `Strict-Transport-Security` is on every HTTPS
//! response (a file, the kept head of a file asked for twice, a 404, a
//! script's) and never on plain HTTP; bad settings end `--check-config`
//! with one line and exit status 2.

use std::path::Path;

use tests::tls::{curl_https, make_certs, resolve, serve_tls, TestCerts, CURL};
use tests::{
    per_backend, run_with_deadline, server_bin, Connection, ServerProcess, TempDocroot, DEADLINE,
};

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// A site with a page and a script, served on a plain and a TLS
/// listener with both options.
fn redirecting_site(
    tag: &str,
    backend: &str,
) -> (TempDocroot, tests::tls::TestCerts, ServerProcess) {
    let site = TempDocroot::new(tag);
    site.write("index.html", b"<p>secure page</p>\n");
    site.write("a/b.txt", b"b\n");
    tests::cgi::write_executable(
        &site.path().join("hello.cgi"),
        b"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfrom the script\\n'\n",
        0o755,
    );
    let certs = make_certs(&site.outside(), "a");
    let server = serve_tls(
        site.path(),
        &certs,
        backend,
        &["--redirect-to-https", "--hsts", HSTS],
    );
    (site, certs, server)
}

fn plain_requests_are_sent_to_https(backend: &str) {
    let (site, certs, server) = redirecting_site("https-redirect", backend);
    let tls = server.tls_port();
    let mut conn = Connection::connect(server.addr());
    conn.send(b"GET /a/b.txt?x=1&y=%20 HTTP/1.1\r\nHost: Example.org:8080\r\n\r\n");
    let moved = conn.read_response();
    moved.assert_status(301);
    assert_eq!(
        moved.expect_header("Location"),
        format!("https://Example.org:{tls}/a/b.txt?x=1&y=%20")
    );
    assert_eq!(
        moved.header("Strict-Transport-Security"),
        None,
        "never over plain HTTP"
    );
    // A POST keeps its method (308); its body is dropped and the next
    // request on the connection is read as a request.
    conn.send(b"POST /hello.cgi HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 9\r\n\r\nname=abcd");
    conn.send(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let post = conn.read_response();
    post.assert_status(308);
    assert_eq!(
        post.expect_header("Location"),
        format!("https://[::1]:{tls}/hello.cgi")
    );
    let head = conn.read_head_response();
    head.assert_status(301);
    assert_eq!(
        head.expect_header("Location"),
        format!("https://localhost:{tls}/")
    );
    // A client waiting for a 100 Continue it will not get sends no body:
    // the connection is not kept (its next bytes could be either).
    let (_, waiting) = server.send_raw(
        b"POST /hello.cgi HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    waiting.assert_status(308);
    assert!(waiting.connection_has("close"), "{}", waiting.head_text());
    // An HTTP/1.0 client that names no host is sent to the address it reached.
    let (_, old) = server.send_raw(b"GET /index.html HTTP/1.0\r\n\r\n");
    old.assert_status(301);
    assert_eq!(
        old.expect_header("Location"),
        format!("https://127.0.0.1:{tls}/index.html")
    );
    // curl follows the redirect to the page.
    let plain = format!("http://localhost:{}/index.html", server.port());
    let page = curl_https(&site, &certs.ca, server.tls_port(), &["-L", &plain]);
    assert_eq!(page, b"<p>secure page</p>\n");
}

fn every_https_response_carries_hsts(backend: &str) {
    let (site, certs, server) = redirecting_site("https-hsts", backend);
    // Over HTTP/1.1 (where the second request of a file is answered with
    // the head kept for this second) and over HTTP/2 (its heads written
    // as HEADERS): every response has the header once.
    for (version, ok, missing) in [
        ("--http1.1", "HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"),
        ("--http2", "HTTP/2 200", "HTTP/2 404"),
    ] {
        let heads = four_heads(&site, &certs, &server, version);
        let statuses: Vec<&str> = heads
            .iter()
            .map(|h| h.lines().next().unwrap_or("").trim_end())
            .collect();
        assert_eq!(statuses, [ok, ok, missing, ok], "{heads:?}");
        for head in &heads {
            let count = head
                .lines()
                .filter(|l| l.eq_ignore_ascii_case(&format!("Strict-Transport-Security: {HSTS}")))
                .count();
            assert_eq!(count, 1, "one Strict-Transport-Security in {head}");
        }
    }
}

/// One curl speaking `version`, four requests on one connection: a file
/// twice, a 404, a script; the four response heads.
fn four_heads(
    site: &TempDocroot,
    certs: &TestCerts,
    server: &ServerProcess,
    version: &str,
) -> Vec<String> {
    let (ca, _, _) = certs.paths();
    let resolve = resolve(server);
    let tls = server.tls_port();
    let headers = site.outside().join("headers.txt");
    let dump = headers.to_str().expect("UTF-8 path");
    let urls: Vec<String> = ["/index.html", "/index.html", "/missing", "/hello.cgi"]
        .iter()
        .map(|p| format!("https://localhost:{tls}{p}"))
        .collect();
    let mut args = vec![
        "-sS",
        "--max-time",
        "30",
        version,
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "-D",
        dump,
        "-o",
        "/dev/null",
    ];
    args.extend(urls.iter().map(String::as_str));
    let output = run_with_deadline(Path::new(CURL), &args, DEADLINE);
    assert!(output.status.success(), "curl: {}", output.stderr);
    let text = std::fs::read_to_string(&headers).expect("curl's headers");
    text.split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string)
        .collect()
}

per_backend!(
    plain_requests_are_sent_to_https,
    every_https_response_carries_hsts
);

/// `--check-config` with `args` on a fresh root: its exit status and the
/// lines it printed on stderr.
fn check_config(site: &TempDocroot, args: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut all = vec![
        "--root",
        site.path().to_str().expect("UTF-8 path"),
        "--check-config",
    ];
    all.extend_from_slice(args);
    let output = run_with_deadline(&server_bin(), &all, DEADLINE);
    let lines = output.stderr.lines().map(String::from).collect();
    (output.status.code(), lines)
}

#[test]
fn bad_redirect_and_hsts_settings_are_refused() {
    let site = TempDocroot::new("https-redirect-check");
    let certs = make_certs(&site.outside(), "a");
    let tls = certs.listen_args();
    let with_tls = |more: &[&str]| {
        let mut args = tls.to_vec();
        args.extend_from_slice(more);
        check_config(&site, &args)
    };
    assert_eq!(
        with_tls(&["--redirect-to-https", "--hsts", HSTS]).0,
        Some(0)
    );
    for (args, says) in [
        (
            &["--redirect-to-https"][..],
            "--redirect-to-https needs HTTPS",
        ),
        (&["--hsts", "max-age=60"][..], "--hsts needs HTTPS"),
    ] {
        let (status, lines) = check_config(&site, args);
        assert_eq!(status, Some(2), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(says), "{args:?}: {lines:?}");
    }
    for bad in ["max-age=soon", "includeSubDomains", "max-age=1; always"] {
        let (status, lines) = with_tls(&["--hsts", bad]);
        assert_eq!(status, Some(2), "--hsts {bad:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "--hsts {bad:?}: {lines:?}");
        assert!(lines[0].contains("--hsts"), "{lines:?}");
    }
}

//! Everything that works over plain HTTP works over HTTPS, byte for byte,
//! under each event backend: one server with a plain and a TLS listener
//! is sent the same pipelined requests on each (a page, a conditional
//! GET answered 304, a gzip_static file, a directory listing, a HEAD, a
//! range, a 404, `OPTIONS *`, a 256 KiB file, the last with
//! `Connection: close`), and the two byte streams read until the server
//! closes are the same once their `Date` lines are set aside. The status
//! page answers over HTTPS too and counts the TLS connection.

use std::io::{Read, Write};
use std::net::TcpStream;

use tests::tls::{make_certs, run_python, serve_tls};
use tests::{per_backend, TempDocroot, DEADLINE};

/// Sends `argv[3]`'s bytes over TLS (the CA `argv[2]`, SNI localhost) to
/// port `argv[1]` and writes what comes back until the server closes to
/// `argv[4]`.
const RAW_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, request, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(open(request, "rb").read())
        got = bytearray()
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            got += chunk
open(out, "wb").write(got)
"#;

fn requests() -> Vec<u8> {
    let host = "Host: localhost\r\n";
    [
        format!("GET /index.html HTTP/1.1\r\n{host}\r\n"),
        format!("GET /index.html HTTP/1.1\r\n{host}If-None-Match: *\r\n\r\n"),
        format!("GET /page.txt HTTP/1.1\r\n{host}Accept-Encoding: gzip\r\n\r\n"),
        format!("GET /dir/ HTTP/1.1\r\n{host}\r\n"),
        format!("HEAD /big.bin HTTP/1.1\r\n{host}\r\n"),
        format!("GET /big.bin HTTP/1.1\r\n{host}Range: bytes=1000-1999\r\n\r\n"),
        format!("GET /missing HTTP/1.1\r\n{host}\r\n"),
        format!("OPTIONS * HTTP/1.1\r\n{host}\r\n"),
        format!("GET /big.bin HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
    ]
    .concat()
    .into_bytes()
}

/// `bytes` with every `Date:` header line left out (the only lines that
/// may differ between two answers a second apart).
fn without_dates(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let line_end = bytes[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(bytes.len(), |p| at + p + 2);
        let line = &bytes[at..line_end];
        if !line.starts_with(b"Date: ") {
            out.extend_from_slice(line);
        }
        at = line_end;
    }
    out
}

fn the_same_requests_get_the_same_bytes_over_https(backend: &str) {
    let site = TempDocroot::new("https-same-bytes");
    site.write("index.html", b"<h1>same</h1>\n");
    site.write("page.txt", b"plain text, also kept gzipped\n");
    site.write("page.txt.gz", b"\x1f\x8b\x08\x00pretend gzip bytes");
    site.write("dir/a.txt", b"a\n");
    site.write("dir/b.txt", b"bb\n");
    let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 13 % 251) as u8).collect();
    site.write("big.bin", &big);
    let certs = make_certs(&site.outside(), "a");
    let (ca, _, _) = certs.paths();
    let server = serve_tls(
        site.path(),
        &certs,
        backend,
        &["--gzip-static", "--dir-listing", "--status-path", "/status"],
    );
    let request = requests();
    let mut plain = TcpStream::connect(server.addr()).expect("connect");
    plain.set_read_timeout(Some(DEADLINE)).expect("timeout");
    plain.write_all(&request).expect("send");
    let mut over_http = Vec::new();
    plain
        .read_to_end(&mut over_http)
        .expect("read until closed");

    let dir = site.outside();
    let request_file = dir.join("requests.bin");
    let out_file = dir.join("over-https.bin");
    std::fs::write(&request_file, &request).expect("write the requests");
    let port = server.tls_port().to_string();
    let (request_path, out_path) = (
        request_file.to_str().expect("UTF-8"),
        out_file.to_str().expect("UTF-8"),
    );
    let run = run_python(
        &dir,
        "raw_client.py",
        RAW_CLIENT,
        &[&port, ca, request_path, out_path],
    );
    assert!(run.status.success(), "the TLS client: {}", run.stderr);
    let over_https = std::fs::read(&out_file).expect("what came over HTTPS");

    let statuses = String::from_utf8_lossy(&over_http)
        .matches("HTTP/1.1 ")
        .count();
    assert!(
        statuses >= 9,
        "nine answers over plain HTTP, saw {statuses}"
    );
    for expected in [
        "304 Not Modified",
        "Content-Encoding: gzip",
        "a.txt",
        "206 Partial",
        "404 Not Found",
    ] {
        assert!(
            String::from_utf8_lossy(&over_http).contains(expected),
            "plain HTTP answers lack {expected:?}"
        );
    }
    tests::assert_bytes_eq(
        "the answers over HTTPS, Date lines aside",
        &without_dates(&over_https),
        &without_dates(&over_http),
    );

    let status_out = dir.join("status.bin");
    let status_request = dir.join("status-request.bin");
    std::fs::write(
        &status_request,
        b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let run = run_python(
        &dir,
        "raw_client.py",
        RAW_CLIENT,
        &[
            &port,
            ca,
            status_request.to_str().expect("UTF-8"),
            status_out.to_str().expect("UTF-8"),
        ],
    );
    assert!(run.status.success(), "the TLS client: {}", run.stderr);
    let page = String::from_utf8_lossy(&std::fs::read(&status_out).expect("status")).into_owned();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("tls: open 1 "),
        "the status page counts this TLS connection: {page}"
    );
}

per_backend!(the_same_requests_get_the_same_bytes_over_https);

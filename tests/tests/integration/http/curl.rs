//! curl as a real client, under each event backend: `curl -i` of the root
//! gets `HTTP/1.1 200 OK`, the expected headers and the index page; `curl
//! -I` gets the headers of a HEAD; a missing page gets a 404. curl must
//! exit 0 each time.

use std::path::Path;

use tests::{
    assert_bytes_eq, per_backend, run_with_deadline, site_docroot, ServerProcess, DEADLINE,
};

const CURL: &str = "/usr/bin/curl";

/// Runs curl and splits `-i`/`-I` output into status line, headers, body.
fn curl(args: &[&str]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let output = run_with_deadline(Path::new(CURL), args, DEADLINE);
    assert!(
        output.status.success(),
        "curl {args:?} failed ({}): {}",
        output.status,
        output.stderr
    );
    let raw = output.stdout.into_bytes();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "curl output has no header end: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == &name.to_ascii_lowercase())
        .map(|(_, v)| v.as_str())
}

fn curl_gets_the_index(backend: &str) {
    let site = site_docroot();
    let server = ServerProcess::serve(&site.root, backend);
    let index = site.file("index.html");
    let (status, headers, body) = curl(&["-sS", "-i", "--max-time", "30", &server.url("/")]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "Content-Length"),
        Some(index.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "Server"), Some("amped/0.1.0"));
    for name in ["Date", "ETag", "Last-Modified"] {
        assert!(header(&headers, name).is_some(), "curl saw no {name}");
    }
    assert_bytes_eq("curl /", &body, &index);
}

fn curl_head(backend: &str) {
    let site = site_docroot();
    let server = ServerProcess::serve(&site.root, backend);
    let (status, headers, body) =
        curl(&["-sS", "-I", "--max-time", "30", &server.url("/index.html")]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "Content-Length"),
        Some(site.file("index.html").len().to_string().as_str())
    );
    assert!(body.is_empty(), "HEAD output has a body: {body:?}");
}

fn curl_gets_404(backend: &str) {
    let site = site_docroot();
    let server = ServerProcess::serve(&site.root, backend);
    let (status, headers, body) = curl(&["-sS", "-i", "--max-time", "30", &server.url("/nope")]);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(
        header(&headers, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
}

per_backend!(curl_gets_the_index, curl_head, curl_gets_404);

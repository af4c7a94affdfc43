//! `--gzip-static`, under each event backend: with the option, a request
//! for `f` from a client that accepts gzip is answered with the bytes of
//! `f.gz` beside it (`f`'s media type, `Content-Encoding: gzip`, the
//! .gz's own validators, ranges over the .gz bytes), large ones through
//! the descriptor path too; a client that does not accept gzip, or a
//! missing `.gz`, gets `f` as it is; every answer for a file says
//! `Vary: Accept-Encoding`. Without the option nothing changes.

use tests::docroot::{pseudo_random_bytes, TempDocroot};
use tests::http_client::{assert_bytes_eq, Response};
use tests::{per_backend, ServerProcess};

const PLAIN: &[u8] = b"plain text, as it is on the disk\n";
const GZIPPED: &[u8] = b"\x1f\x8b\x08\x00 stands in for the gzip bytes of f.txt";

fn gzip_root() -> TempDocroot {
    let root = TempDocroot::new("gzip-static");
    root.write("f.txt", PLAIN);
    root.write("f.txt.gz", GZIPPED);
    root.write("alone.css", b"body { color: black }\n");
    root.write("big.js", &pseudo_random_bytes(200_000, 1));
    root.write("big.js.gz", &pseudo_random_bytes(150_000, 2));
    root
}

fn get(server: &ServerProcess, path: &str, headers: &[(&str, &str)]) -> Response {
    server.connect().request("GET", path, headers)
}

fn assert_gzipped(response: &Response, content_type: &str) {
    response.assert_status(200);
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(response.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(response.header("Content-Type"), Some(content_type));
    assert_eq!(response.header_count("Content-Type"), 1);
}

fn assert_plain_with_vary(response: &Response, body: &[u8]) {
    response.assert_status(200);
    assert_eq!(response.header("Content-Encoding"), None);
    assert_eq!(response.header("Vary"), Some("Accept-Encoding"));
    assert_bytes_eq("plain body", &response.body, body);
}

fn accepting_clients_get_the_gz_bytes(backend: &str) {
    let root = gzip_root();
    let server = ServerProcess::serve_with(root.path(), backend, &["--gzip-static"]);
    for accept in ["gzip", "br, GZIP;q=0.5", "*", "deflate, x-gzip"] {
        let response = get(&server, "/f.txt", &[("Accept-Encoding", accept)]);
        assert_gzipped(&response, "text/plain; charset=utf-8");
        assert_bytes_eq(accept, &response.body, GZIPPED);
    }
    // The gz variant's validators are its own, not f's.
    let gzipped = get(&server, "/f.txt", &[("Accept-Encoding", "gzip")]);
    let plain = get(&server, "/f.txt", &[]);
    assert_ne!(gzipped.header("ETag"), plain.header("ETag"));
    let etag = gzipped.expect_header("ETag").to_string();
    let again = get(
        &server,
        "/f.txt",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    );
    again.assert_status(304);
    assert_eq!(again.header("Content-Encoding"), Some("gzip"));
    assert_eq!(again.header("Vary"), Some("Accept-Encoding"));
    // The .gz itself is still an ordinary file.
    let direct = get(&server, "/f.txt.gz", &[("Accept-Encoding", "gzip")]);
    direct.assert_status(200);
    assert_eq!(direct.header("Content-Encoding"), None);
    assert_bytes_eq("f.txt.gz", &direct.body, GZIPPED);
}

fn other_clients_get_the_plain_file_with_vary(backend: &str) {
    let root = gzip_root();
    let server = ServerProcess::serve_with(root.path(), backend, &["--gzip-static"]);
    for accept in [
        None,
        Some("gzip;q=0"),
        Some("br, deflate"),
        Some("*, gzip;q=0"),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
        let response = get(&server, "/f.txt", &headers);
        assert_plain_with_vary(&response, PLAIN);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

fn a_missing_gz_falls_back_to_the_file(backend: &str) {
    let root = gzip_root();
    let server = ServerProcess::serve_with(root.path(), backend, &["--gzip-static"]);
    let mut conn = server.connect();
    // Twice: once from the helpers, once from the cache.
    for _ in 0..2 {
        let response = conn.request("GET", "/alone.css", &[("Accept-Encoding", "gzip")]);
        assert_plain_with_vary(&response, b"body { color: black }\n");
        assert_eq!(
            response.header("Content-Type"),
            Some("text/css; charset=utf-8")
        );
    }
    let missing = conn.request("GET", "/nothing.txt", &[("Accept-Encoding", "gzip")]);
    missing.assert_error_page(404);
}

fn ranges_apply_to_the_gz_bytes(backend: &str) {
    let root = gzip_root();
    let server = ServerProcess::serve_with(root.path(), backend, &["--gzip-static"]);
    let headers = [("Accept-Encoding", "gzip"), ("Range", "bytes=4-9")];
    let response = get(&server, "/f.txt", &headers);
    response.assert_status(206);
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    let range = format!("bytes 4-9/{}", GZIPPED.len());
    assert_eq!(response.header("Content-Range"), Some(range.as_str()));
    assert_bytes_eq("range of the gz bytes", &response.body, &GZIPPED[4..10]);
}

fn large_gz_files_go_by_descriptor(backend: &str) {
    let root = gzip_root();
    let args = ["--gzip-static", "--inline-max", "1K"];
    let server = ServerProcess::serve_with(root.path(), backend, &args);
    let mut conn = server.connect();
    for _ in 0..2 {
        let response = conn.request("GET", "/big.js", &[("Accept-Encoding", "gzip")]);
        assert_gzipped(&response, "text/javascript; charset=utf-8");
        assert_bytes_eq(
            "big.js.gz",
            &response.body,
            &pseudo_random_bytes(150_000, 2),
        );
    }
    let headers = [
        ("Accept-Encoding", "gzip"),
        ("Range", "bytes=100000-100099"),
    ];
    let part = conn.request("GET", "/big.js", &headers);
    part.assert_status(206);
    let gz = pseudo_random_bytes(150_000, 2);
    assert_bytes_eq("range of big.js.gz", &part.body, &gz[100_000..100_100]);
    let plain = conn.request("GET", "/big.js", &[]);
    assert_plain_with_vary(&plain, &pseudo_random_bytes(200_000, 1));
}

fn without_the_option_nothing_changes(backend: &str) {
    let root = gzip_root();
    let server = ServerProcess::serve(root.path(), backend);
    let response = get(&server, "/f.txt", &[("Accept-Encoding", "gzip")]);
    response.assert_status(200);
    assert_eq!(response.header("Content-Encoding"), None);
    assert_eq!(response.header("Vary"), None);
    assert_bytes_eq("plain body", &response.body, PLAIN);
}

per_backend!(
    accepting_clients_get_the_gz_bytes,
    other_clients_get_the_plain_file_with_vary,
    a_missing_gz_falls_back_to_the_file,
    ranges_apply_to_the_gz_bytes,
    large_gz_files_go_by_descriptor,
    without_the_option_nothing_changes,
);

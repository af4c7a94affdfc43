//! Large CGI bodies, byte-exact, under each event backend: a 10 MiB
//! request body sent with Content-Length and a ~1 MiB chunked upload (odd
//! chunk sizes) reach the script whole, with CONTENT_LENGTH right and
//! end-of-file after the body (the script reads with `cat`); and 100 MiB
//! of script output (no Content-Length from the script) reaches the client
//! whole, chunked on HTTP/1.1 (the connection then still usable) and
//! close-delimited on HTTP/1.0. A chunked body that breaks RFC 9112's
//! grammar (a signed or padded size, a bad extension, a bare LF, data
//! not ended by CRLF, a malformed trailer) gets 400 and a closed
//! connection.

use std::fs;
use std::sync::OnceLock;

use tests::cgi::{chunked, request_with_body, CgiSite};
use tests::docroot::pseudo_random_bytes;
use tests::{assert_bytes_eq, per_backend, ServerProcess};

/// Size of the generated script output.
const OUTPUT_SIZE: usize = 100 * 1024 * 1024;

/// The scripts' time limit: 100 MiB through a debug build on a loaded
/// 2-core machine can take longer than the default 30 s, and a cut would
/// fail the test for the machine's sake, not the server's.
const CGI_TIMEOUT: &str = "300";

/// A server for `site` with the generous [`CGI_TIMEOUT`].
fn serve(site: &CgiSite, backend: &str) -> ServerProcess {
    ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", CGI_TIMEOUT])
}

/// A site whose `cgi-bin/upload.cgi` stores its stdin (read to end-of-file)
/// in `outside/upload.bin`, then reports CONTENT_LENGTH and the size, and
/// whose `cgi-bin/numbers.cgi` writes the first [`OUTPUT_SIZE`] bytes of
/// `seq 1 20000000`.
fn body_site() -> CgiSite {
    let site = CgiSite::new("cgi-bodies");
    let store = site.outside().join("upload.bin");
    site.script(
        "cgi-bin/upload.cgi",
        &format!(
            r#"cat > '{store}'
printf 'Content-Type: text/plain\r\n\r\n'
printf 'CONTENT_LENGTH=%s\n' "$CONTENT_LENGTH"
printf 'stored=%s\n' "$(wc -c < '{store}' | tr -d ' ')"
"#,
            store = store.display()
        ),
    );
    site.script(
        "cgi-bin/numbers.cgi",
        &format!(
            "printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\n\
             seq 1 20000000 | head -c {OUTPUT_SIZE}\n"
        ),
    );
    site
}

/// What numbers.cgi writes after its header block.
fn expected_numbers() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut out = Vec::with_capacity(OUTPUT_SIZE + 16);
        let mut n = 1u64;
        while out.len() < OUTPUT_SIZE {
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b'\n');
            n += 1;
        }
        out.truncate(OUTPUT_SIZE);
        out
    })
}

fn assert_upload_stored(site: &CgiSite, report: &str, sent: &[u8]) {
    assert_eq!(
        report,
        format!("CONTENT_LENGTH={0}\nstored={0}\n", sent.len()),
        "upload.cgi's report"
    );
    let stored = fs::read(site.outside().join("upload.bin")).expect("read the stored upload");
    assert_bytes_eq("the body the script stored", &stored, sent);
}

fn ten_mib_content_length_body_is_byte_exact(backend: &str) {
    let site = body_site();
    let server = serve(&site, backend);
    let body = pseudo_random_bytes(10 * 1024 * 1024, 7);
    let mut conn = server.connect();
    conn.send(&request_with_body(
        "POST",
        "/cgi-bin/upload.cgi",
        &[("Content-Type", "application/octet-stream")],
        &body,
    ));
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_upload_stored(&site, &response.body_text(), &body);
}

fn chunked_upload_is_byte_exact(backend: &str) {
    let site = body_site();
    let server = serve(&site, backend);
    let body = pseudo_random_bytes(1024 * 1024 + 4321, 11);
    let mut raw = b"POST /cgi-bin/upload.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&chunked(&body, &[1, 7, 4093, 65537, 333, 100_003, 2]));
    let mut conn = server.connect();
    conn.send(&raw);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_upload_stored(&site, &response.body_text(), &body);
    // The connection is still good for another (chunked) upload.
    let small = b"tiny second body";
    let mut raw = b"POST /cgi-bin/upload.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&chunked(small, &[3]));
    conn.send(&raw);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_upload_stored(&site, &response.body_text(), small);
}

fn hundred_mib_output_chunked_on_http11(backend: &str) {
    let site = body_site();
    let server = serve(&site, backend);
    let mut conn = server.connect();
    conn.send(b"GET /cgi-bin/numbers.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(
        response.header("Transfer-Encoding"),
        Some("chunked"),
        "HTTP/1.1 output without a Content-Length is chunked:\n{}",
        response.head_text()
    );
    assert!(
        !response.connection_has("close"),
        "{}",
        response.head_text()
    );
    assert_bytes_eq(
        "numbers.cgi over HTTP/1.1",
        &response.body,
        expected_numbers(),
    );
    // Keep-alive survived the 100 MiB chunked response.
    conn.send(b"GET /cgi-bin/upload.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "CONTENT_LENGTH=\nstored=0\n");
}

fn hundred_mib_output_close_delimited_on_http10(backend: &str) {
    let site = body_site();
    let server = serve(&site, backend);
    let mut conn = server.connect();
    conn.send(b"GET /cgi-bin/numbers.cgi HTTP/1.0\r\n\r\n");
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(
        response.header("Transfer-Encoding"),
        None,
        "no chunked on HTTP/1.0:\n{}",
        response.head_text()
    );
    assert_eq!(
        response.header("Content-Length"),
        None,
        "the script gave no length:\n{}",
        response.head_text()
    );
    assert_bytes_eq(
        "numbers.cgi over HTTP/1.0",
        &response.body,
        expected_numbers(),
    );
}

fn malformed_chunked_bodies_get_400_and_close(backend: &str) {
    let site = body_site();
    let server = serve(&site, backend);
    let bodies: [&[u8]; 8] = [
        b"+5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXY0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
        b"5\r\nhello\r\n0\r\n Folded: x\r\n\r\n",
    ];
    for body in bodies {
        let mut raw = b"POST /cgi-bin/upload.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(body);
        let mut conn = server.connect();
        conn.send(&raw);
        conn.read_response().assert_error_page(400);
        conn.expect_closed();
    }
}

per_backend!(
    malformed_chunked_bodies_get_400_and_close,
    ten_mib_content_length_body_is_byte_exact,
    chunked_upload_is_byte_exact,
    hundred_mib_output_chunked_on_http11,
    hundred_mib_output_close_delimited_on_http10,
);

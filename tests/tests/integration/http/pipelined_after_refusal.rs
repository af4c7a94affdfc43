//! A refused `HEAD /.env` gets no body, under each event backend, so a
//! `HEAD /index.html` pipelined behind it parses as the next response.

use tests::http_client::request_bytes;
use tests::{per_backend, site_docroot, ServerProcess};

fn refused_head_has_no_body_before_a_pipelined_head(backend: &str) {
    let site = site_docroot();
    let server = ServerProcess::serve(&site.root, backend);
    let mut conn = server.connect();
    let mut requests = request_bytes("HEAD", "/.env", &[]);
    requests.push_str(&request_bytes("HEAD", "/index.html", &[]));
    conn.send(requests.as_bytes());
    let refused = conn
        .try_read_response(true)
        .unwrap_or_else(|e| panic!("the response to HEAD /.env: {e}"));
    // Dot-files are refused by name, whether or not they exist.
    assert_eq!(refused.status, 403, "HEAD /.env:\n{}", refused.head_text());
    let next = conn.try_read_response(true).unwrap_or_else(|e| {
        panic!("the HEAD pipelined behind a refused HEAD does not parse (a body was sent?): {e}")
    });
    next.assert_status(200);
    assert_eq!(
        next.content_length(),
        Some(site.file("index.html").len() as u64),
        "{}",
        next.head_text()
    );
    assert!(
        !conn.has_pending_bytes(),
        "bytes after the two HEAD responses: {:?}",
        String::from_utf8_lossy(conn.buffered())
    );
    // Still in step: a GET on the same connection.
    conn.get("/index.html").assert_status(200);
}

per_backend!(refused_head_has_no_body_before_a_pipelined_head);

//! Request handling against the contract, under each event backend: HEAD,
//! the Host rule (400 on HTTP/1.1 without it, fine on HTTP/1.0), OPTIONS
//! (a file's `Allow`, a script's with POST, `OPTIONS *`), 405 with
//! `Allow`, 501, 505, 414, 431 (head too large, too many fields), 400 for
//! Content-Length with Transfer-Encoding, 501 for a transfer coding other
//! than a single final `chunked`, connection management
//! (`Connection: close`, HTTP/1.0 close by default and keep-alive on
//! request) and pipelined requests answered in order, also behind a
//! response too large for one write.

use tests::http_client::request_bytes;
use tests::{assert_bytes_eq, per_backend, site_docroot, ServerProcess};

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

/// Sends `raw` on a new connection and reads one (non-HEAD) response.
fn assert_refused_and_closed(server: &ServerProcess, raw: &[u8], status: u16) {
    let (mut conn, response) = server.send_raw(raw);
    response.assert_error_page(status);
    conn.expect_closed();
}

fn head_has_get_headers_and_no_body(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in ["index.html", "large.bin"] {
        let path = format!("/{file}");
        let get = conn.get(&path);
        get.assert_status(200);
        let head = conn.request("HEAD", &path, &[]);
        head.assert_status(200);
        assert_eq!(
            head.content_length(),
            Some(site.file(file).len() as u64),
            "HEAD {path} Content-Length is the full body's:\n{}",
            head.head_text()
        );
        for name in [
            "Content-Type",
            "Content-Length",
            "ETag",
            "Last-Modified",
            "Accept-Ranges",
            "Server",
        ] {
            assert_eq!(
                head.header(name),
                get.header(name),
                "HEAD and GET {path} differ in {name}"
            );
        }
        // Had the server sent a body after the HEAD response, this next
        // response would not parse.
        let next = conn.get("/notes.txt");
        next.assert_status(200);
        assert_bytes_eq("/notes.txt after HEAD", &next.body, &site.file("notes.txt"));
    }
}

fn missing_host_on_http11_is_400(backend: &str) {
    let server = site_server(backend);
    assert_refused_and_closed(&server, b"GET /index.html HTTP/1.1\r\n\r\n", 400);
    assert_refused_and_closed(
        &server,
        b"GET /index.html HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
        400,
    );
}

fn http10_without_host_is_served(backend: &str) {
    let server = site_server(backend);
    let (_, response) = server.send_raw(b"GET /index.html HTTP/1.0\r\n\r\n");
    response.assert_status(200);
    assert_bytes_eq(
        "/index.html over HTTP/1.0",
        &response.body,
        &site_docroot().file("index.html"),
    );
}

fn other_methods_are_405_with_allow(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        conn.send(
            format!(
                "{method} /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
            )
            .as_bytes(),
        );
        let response = conn.read_response();
        response.assert_error_page(405);
        let allow = response.expect_header("Allow");
        let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        allowed.sort_unstable();
        assert_eq!(
            allowed,
            ["GET", "HEAD", "OPTIONS"],
            "{method}: Allow: {allow}"
        );
        assert!(
            !response.connection_has("close"),
            "{method} with Content-Length keeps the connection:\n{}",
            response.head_text()
        );
    }
    // The request bodies were skipped correctly: the next request works.
    let response = conn.get("/index.html");
    response.assert_status(200);
    assert_bytes_eq(
        "/index.html after 405s",
        &response.body,
        &site.file("index.html"),
    );
}

fn options_answers_with_allow(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for (target, allow) in [
        ("/index.html", "GET, HEAD, OPTIONS"),
        ("/large.bin", "GET, HEAD, OPTIONS"),
        ("/cgi-bin/app.cgi/extra", "GET, HEAD, OPTIONS, POST"),
        ("*", "GET, HEAD, OPTIONS, POST"),
    ] {
        // A small body is skipped, the connection kept.
        conn.send(
            format!("OPTIONS {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
                .as_bytes(),
        );
        let response = conn.read_response();
        response.assert_status(200);
        assert_eq!(response.header("Allow"), Some(allow), "OPTIONS {target}");
        assert_eq!(response.content_length(), Some(0), "OPTIONS {target}");
        assert!(response.body.is_empty());
    }
    conn.get("/index.html").assert_status(200);
    // `*` is a target for OPTIONS only.
    assert_refused_and_closed(&server, b"GET * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400);
}

fn unknown_method_is_501_and_closes(backend: &str) {
    let server = site_server(backend);
    assert_refused_and_closed(
        &server,
        b"FROB /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        501,
    );
}

fn unsupported_version_is_505_and_closes(backend: &str) {
    let server = site_server(backend);
    for version in ["HTTP/2.0", "HTTP/3.0"] {
        assert_refused_and_closed(
            &server,
            format!("GET /index.html {version}\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
            505,
        );
    }
}

fn long_request_target_is_414_and_closes(backend: &str) {
    let server = site_server(backend);
    // Just under the limit (8000 bytes in 100-byte segments, so no single
    // name is too long for the file system): an ordinary 404.
    let under = format!("/{}", "a".repeat(99)).repeat(80);
    assert_eq!(under.len(), 8000);
    let (_, response) = server.send_raw(request_bytes("GET", &under, &[]).as_bytes());
    response.assert_error_page(404);
    // Over the limit.
    assert_refused_and_closed(
        &server,
        request_bytes("GET", &format!("/{}", "a".repeat(9000)), &[]).as_bytes(),
        414,
    );
}

fn oversized_request_head_is_431_and_closes(backend: &str) {
    let server = site_server(backend);
    let big = "b".repeat(17 * 1024);
    assert_refused_and_closed(
        &server,
        request_bytes("GET", "/index.html", &[("X-Big", &big)]).as_bytes(),
        431,
    );
}

fn too_many_header_fields_is_431_and_closes(backend: &str) {
    let server = site_server(backend);
    let fields = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("X-Field-{i}"), "v".to_owned()))
            .collect()
    };
    let as_refs = |v: &[(String, String)]| -> String {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        request_bytes("GET", "/index.html", &pairs)
    };
    // Host plus 99 fields: 100 in all, within the limit.
    let (_, response) = server.send_raw(as_refs(&fields(99)).as_bytes());
    response.assert_status(200);
    // Host plus 110 fields.
    assert_refused_and_closed(&server, as_refs(&fields(110)).as_bytes(), 431);
}

fn content_length_with_transfer_encoding_is_400_and_closes(backend: &str) {
    let server = site_server(backend);
    assert_refused_and_closed(
        &server,
        b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

fn unknown_transfer_coding_is_501_and_closes(backend: &str) {
    let server = site_server(backend);
    for codings in ["gzip, chunked", "chunked, chunked", "identity"] {
        assert_refused_and_closed(
            &server,
            format!(
                "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Transfer-Encoding: {codings}\r\n\r\n0\r\n\r\n"
            )
            .as_bytes(),
            501,
        );
    }
}

fn malformed_request_line_is_400(backend: &str) {
    let server = site_server(backend);
    assert_refused_and_closed(&server, b"GET\r\nHost: 127.0.0.1\r\n\r\n", 400);
    assert_refused_and_closed(
        &server,
        b"GET /index.html HTTP/1.1\r\nBad Header Line\r\n\r\n",
        400,
    );
}

fn connection_close_is_honoured(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    let response = conn.request("GET", "/index.html", &[("Connection", "close")]);
    response.assert_status(200);
    assert!(
        response.connection_has("close"),
        "response to `Connection: close` says close:\n{}",
        response.head_text()
    );
    assert_bytes_eq(
        "/index.html",
        &response.body,
        &site_docroot().file("index.html"),
    );
    conn.expect_closed();
}

fn http10_closes_by_default(backend: &str) {
    let server = site_server(backend);
    let (mut conn, response) =
        server.send_raw(b"GET /notes.txt HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    response.assert_status(200);
    assert!(
        !response.connection_has("keep-alive"),
        "HTTP/1.0 without keep-alive must not be kept alive:\n{}",
        response.head_text()
    );
    assert_bytes_eq(
        "/notes.txt",
        &response.body,
        &site_docroot().file("notes.txt"),
    );
    conn.expect_closed();
}

fn http10_keep_alive_on_request(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in ["notes.txt", "index.html", "large.bin"] {
        conn.send(
            format!("GET /{file} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        let response = conn.read_response();
        response.assert_status(200);
        assert!(
            response.connection_has("keep-alive"),
            "HTTP/1.0 keep-alive response says keep-alive:\n{}",
            response.head_text()
        );
        assert_bytes_eq(file, &response.body, &site.file(file));
    }
    // A last HTTP/1.0 request without keep-alive ends the connection.
    conn.send(b"GET /style.css HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let response = conn.read_response();
    response.assert_status(200);
    conn.expect_closed();
}

fn pipelined_requests_are_answered_in_order(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    let mut pipeline = String::new();
    pipeline.push_str(&request_bytes("GET", "/index.html", &[]));
    pipeline.push_str(&request_bytes("HEAD", "/style.css", &[]));
    pipeline.push_str(&request_bytes("GET", "/nope.html", &[]));
    pipeline.push_str(&request_bytes("GET", "/large.bin", &[]));
    pipeline.push_str(&request_bytes("GET", "/sub", &[]));
    pipeline.push_str(&request_bytes("GET", "/notes.txt", &[]));
    conn.send(pipeline.as_bytes());

    let r = conn.read_response();
    r.assert_status(200);
    assert_bytes_eq("1: /index.html", &r.body, &site.file("index.html"));
    let r = conn.read_head_response();
    r.assert_status(200);
    assert_eq!(
        r.content_length(),
        Some(site.file("style.css").len() as u64)
    );
    conn.read_response().assert_error_page(404);
    let r = conn.read_response();
    r.assert_status(200);
    assert_bytes_eq("4: /large.bin", &r.body, &site.file("large.bin"));
    let r = conn.read_response();
    r.assert_status(301);
    assert_eq!(r.header("Location"), Some("/sub/"));
    let r = conn.read_response();
    r.assert_status(200);
    assert_bytes_eq("6: /notes.txt", &r.body, &site.file("notes.txt"));
    assert!(
        conn.buffered().is_empty(),
        "no bytes after the last response"
    );
}

fn pipelined_request_after_a_large_response_is_answered(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    for large in ["big.bin", "huge.bin"] {
        let mut conn = server.connect();
        let mut pipeline = request_bytes("GET", &format!("/{large}"), &[]);
        pipeline.push_str(&request_bytes("GET", "/notes.txt", &[]));
        conn.send(pipeline.as_bytes());
        let r = conn.read_response();
        r.assert_status(200);
        assert_bytes_eq(large, &r.body, &site.file(large));
        let r = conn
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("the request pipelined behind /{large}: {e}"));
        r.assert_status(200);
        assert_bytes_eq("/notes.txt", &r.body, &site.file("notes.txt"));
    }
}

/// True when the server's end of the connection from `client_port` has
/// nothing left in its receive queue (`/proc/net/tcp`, column rx_queue).
fn server_has_read(server_port: u16, client_port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!(":{server_port:04X}");
    let remote = format!(":{client_port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 4
            && fields[1].ends_with(&local)
            && fields[2].ends_with(&remote)
            && fields[4].split(':').nth(1) == Some("00000000")
    })
}

fn request_split_across_writes_is_served(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    let raw = request_bytes("GET", "/index.html", &[("User-Agent", "split-test")]);
    let (a, b) = raw.as_bytes().split_at(7);
    conn.send(a);
    // Send the rest only once the server has read the first piece, so that
    // it really sees the request in two reads.
    let client = conn.stream().local_addr().expect("client address");
    assert!(
        tests::procfs::poll_until(tests::DEADLINE, || server_has_read(
            server.port(),
            client.port()
        )),
        "the server never read the first piece"
    );
    conn.send(b);
    let response = conn.read_response();
    response.assert_status(200);
    assert_bytes_eq(
        "/index.html",
        &response.body,
        &site_docroot().file("index.html"),
    );
}

per_backend!(
    head_has_get_headers_and_no_body,
    missing_host_on_http11_is_400,
    http10_without_host_is_served,
    other_methods_are_405_with_allow,
    options_answers_with_allow,
    unknown_method_is_501_and_closes,
    unsupported_version_is_505_and_closes,
    long_request_target_is_414_and_closes,
    oversized_request_head_is_431_and_closes,
    too_many_header_fields_is_431_and_closes,
    content_length_with_transfer_encoding_is_400_and_closes,
    unknown_transfer_coding_is_501_and_closes,
    malformed_request_line_is_400,
    connection_close_is_honoured,
    http10_closes_by_default,
    http10_keep_alive_on_request,
    pipelined_requests_are_answered_in_order,
    pipelined_request_after_a_large_response_is_answered,
    request_split_across_writes_is_served,
);

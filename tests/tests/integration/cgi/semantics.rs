//! What the server makes of a script's output, and of the request around
//! it, under each event backend: `Status`, local and absolute `Location`
//! (`//host/path` being a client redirect, not a local one),
//! nph- scripts, a script's own Content-Length, chunked and close-delimited
//! framing, 502 for a malformed header block or no output, 500 for a bad
//! interpreter, keep-alive across CGI responses, HEAD without a body,
//! `Expect: 100-continue`, 413 past `--cgi-max-body`, and a script's
//! stderr in the error log with the `cgi: /path: ` prefix, in a line of
//! the cgi-runner's.

use tests::cgi::{chunked, request_with_body, CgiSite, TEXT_HEAD};
use tests::procfs::poll_until;
use tests::{assert_bytes_eq, per_backend, Connection, Response, ServerProcess, DEADLINE};

const PAGE: &[u8] = b"<!doctype html>\n<p>the page a script redirects to</p>\n";

fn semantics_site() -> CgiSite {
    let site = CgiSite::new("cgi-semantics");
    site.file("static/page.html", PAGE);
    site.script("cgi-bin/hello.cgi", &format!("{TEXT_HEAD}\necho hello\n"));
    site.script(
        "cgi-bin/status.cgi",
        r"printf 'Status: 404 Not Here\r\nContent-Type: text/plain\r\nX-From-Script: yes\r\n\r\n'
echo 'the script says no'
",
    );
    site.script(
        "cgi-bin/local.cgi",
        r"printf 'Location: /static/page.html\r\n\r\n'
",
    );
    site.script(
        "cgi-bin/absolute.cgi",
        r"printf 'Location: http://example.com/elsewhere?x=1\r\n\r\n'
",
    );
    site.script(
        "cgi-bin/network-path.cgi",
        r"printf 'Location: //static/page.html\r\n\r\n'
",
    );
    site.script(
        "cgi-bin/nph-raw.cgi",
        r"printf 'HTTP/1.1 203 Non-Authoritative Information\r\nContent-Type: text/plain\r\nX-Nph: raw\r\n\r\n'
echo 'nph body'
",
    );
    site.script(
        "cgi-bin/length.cgi",
        r"printf 'Content-Type: text/plain\r\nContent-Length: 6\r\n\r\nsized\n'
",
    );
    site.script(
        "cgi-bin/malformed.cgi",
        "echo 'this is not a header block'\necho\necho leaked-body\n",
    );
    site.script("cgi-bin/silent.cgi", "exit 0\n");
    site.script("cgi-bin/silent-fail.cgi", "exit 3\n");
    site.raw_script(
        "cgi-bin/badinterp.cgi",
        b"#!/nonexistent/interp\nprint('leaked-source')\n",
        0o755,
    );
    site.script(
        "cgi-bin/echo.cgi",
        &format!(
            "{TEXT_HEAD}\nprintf '%s %s:' \"$REQUEST_METHOD\" \"${{CONTENT_LENGTH:-none}}\"\n\
             head -c \"${{CONTENT_LENGTH:-0}}\"\n"
        ),
    );
    site.script(
        "cgi-bin/err.cgi",
        &format!(
            "echo 'amped-stderr-first line' >&2\necho 'amped-stderr-second line' >&2\n\
             {TEXT_HEAD}\necho 'stdout is fine'\n"
        ),
    );
    site
}

fn get(conn: &mut Connection, target: &str) -> Response {
    conn.get_dechunked(target)
}

fn status_header_sets_the_status(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();
    let response = get(&mut conn, "/cgi-bin/status.cgi");
    response.assert_status(404);
    assert_eq!(response.reason, "Not Here");
    assert_eq!(response.header("X-From-Script"), Some("yes"));
    assert_eq!(
        response.header("Status"),
        None,
        "Status is not a response header"
    );
    assert_eq!(response.body_text(), "the script says no\n");
    // The connection is kept after the script's 404.
    let response = get(&mut conn, "/cgi-bin/hello.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "hello\n");
}

fn location_redirects(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();

    let response = get(&mut conn, "/cgi-bin/local.cgi");
    response.assert_status(200);
    assert_bytes_eq("local redirect", &response.body, PAGE);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8"),
        "the static file's type:\n{}",
        response.head_text()
    );
    assert_eq!(response.header("Location"), None, "served internally");

    let response = get(&mut conn, "/cgi-bin/absolute.cgi");
    response.assert_status(302);
    assert_eq!(
        response.header("Location"),
        Some("http://example.com/elsewhere?x=1")
    );

    // `//static/page.html` names the host `static`: the client's to follow.
    let response = get(&mut conn, "/cgi-bin/network-path.cgi");
    response.assert_status(302);
    assert_eq!(response.header("Location"), Some("//static/page.html"));
}

fn nph_script_sends_its_own_status_line(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();
    conn.send(b"GET /cgi-bin/nph-raw.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let response = conn.read_response_dechunked();
    response.assert_status(203);
    assert_eq!(response.reason, "Non-Authoritative Information");
    assert_eq!(response.header("X-Nph"), Some("raw"));
    assert_eq!(response.body_text(), "nph body\n");
    // The body was close-delimited: the connection is gone.
    conn.expect_closed();
}

fn output_framing(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();

    // The script's own Content-Length is used; no chunking.
    let response = get(&mut conn, "/cgi-bin/length.cgi");
    response.assert_status(200);
    assert_eq!(
        response.content_length(),
        Some(6),
        "{}",
        response.head_text()
    );
    assert_eq!(response.header("Transfer-Encoding"), None);
    assert_eq!(response.body_text(), "sized\n");

    // Without one, HTTP/1.1 gets chunked and keeps the connection: two
    // CGI responses and a static one on the same connection.
    for _ in 0..2 {
        let response = get(&mut conn, "/cgi-bin/hello.cgi");
        response.assert_status(200);
        assert_eq!(
            response.header("Transfer-Encoding"),
            Some("chunked"),
            "{}",
            response.head_text()
        );
        assert_eq!(response.body_text(), "hello\n");
    }
    let response = get(&mut conn, "/static/page.html");
    response.assert_status(200);
    assert_bytes_eq("static after CGI", &response.body, PAGE);

    // HTTP/1.0: close-delimited.
    let mut conn = server.connect();
    conn.send(b"GET /cgi-bin/hello.cgi HTTP/1.0\r\n\r\n");
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.header("Transfer-Encoding"), None);
    assert_eq!(response.header("Content-Length"), None);
    assert_eq!(response.body_text(), "hello\n");
    conn.expect_closed();
}

fn broken_scripts_are_502_or_500(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    for (target, status) in [
        ("/cgi-bin/malformed.cgi", 502),
        ("/cgi-bin/silent.cgi", 502),
        ("/cgi-bin/silent-fail.cgi", 502),
        ("/cgi-bin/badinterp.cgi", 500),
    ] {
        let mut conn = server.connect();
        let response = get(&mut conn, target);
        assert!(
            !response.body_text().contains("leaked-")
                && !response.body_text().contains("not a header block"),
            "{target}: the script's output leaked into the error page"
        );
        response.assert_error_page(status);
    }
    // And the server keeps serving scripts.
    let response = get(&mut server.connect(), "/cgi-bin/hello.cgi");
    response.assert_status(200);
}

fn head_to_script_has_no_body(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();
    for target in ["/cgi-bin/hello.cgi", "/cgi-bin/length.cgi"] {
        let head = conn.request_dechunked("HEAD", target, &[]);
        head.assert_status(200);
        assert_eq!(head.header("Content-Type"), Some("text/plain"));
        // Had a body followed, this GET's response would not parse.
        let response = get(&mut conn, "/cgi-bin/echo.cgi");
        response.assert_status(200);
        assert_eq!(response.body_text(), "GET none:", "after HEAD {target}");
    }
}

fn expect_100_continue(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();
    let body = b"sent after the 100";
    conn.send(
        format!(
            "POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    // Nothing of the body is sent until the interim response arrives.
    let interim = conn.read_head();
    assert_eq!(
        (interim.version.as_str(), interim.status),
        ("HTTP/1.1", 100),
        "expected `HTTP/1.1 100 Continue` first:\n{}",
        interim.head_text()
    );
    conn.send(body);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "POST 18:sent after the 100");
    // Still one connection.
    let response = get(&mut conn, "/cgi-bin/hello.cgi");
    response.assert_status(200);
}

fn body_over_max_is_413(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-max-body", "1K"]);
    let limit = vec![b'x'; 1024];

    // At the limit: accepted, by Content-Length and chunked.
    let mut conn = server.connect();
    conn.send(&request_with_body("POST", "/cgi-bin/echo.cgi", &[], &limit));
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body.len(), "POST 1024:".len() + 1024);
    let mut raw = b"POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&chunked(&limit, &[100, 7]));
    conn.send(&raw);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body.len(), "POST 1024:".len() + 1024);

    // Over it by Content-Length: refused on the head alone.
    let mut conn = server.connect();
    conn.send(
        b"POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1025\r\n\r\n",
    );
    conn.read_response_dechunked().assert_error_page(413);

    // Over it with Expect: 100-continue: 413 (possibly after a 100).
    let mut conn = server.connect();
    conn.send(
        b"POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\
          Content-Length: 5000\r\n\r\n",
    );
    let mut response = conn.read_response_dechunked();
    if response.status == 100 {
        response = conn.read_response_dechunked();
    }
    response.assert_error_page(413);

    // Over it chunked.
    let mut conn = server.connect();
    let mut raw = b"POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&chunked(&vec![b'y'; 2000], &[500]));
    conn.send(&raw);
    conn.read_response_dechunked().assert_error_page(413);
}

fn stderr_goes_to_the_error_log(backend: &str) {
    let site = semantics_site();
    let server = ServerProcess::serve(site.root(), backend);
    let response = get(&mut server.connect(), "/cgi-bin/err.cgi");
    response.assert_status(200);
    assert_eq!(
        response.body_text(),
        "stdout is fine\n",
        "stderr stays out of the response"
    );
    let expected = [
        "cgi: /cgi-bin/err.cgi: amped-stderr-first line",
        "cgi: /cgi-bin/err.cgi: amped-stderr-second line",
    ];
    let logged = poll_until(DEADLINE, || {
        let log = server.stderr_text();
        // After the log's head: `TIME error cgi-runner[PID]: `.
        expected.iter().all(|line| {
            log.lines()
                .any(|l| l.contains(" error cgi-runner[") && l.ends_with(&format!("]: {line}")))
        })
    });
    assert!(
        logged,
        "the server's stderr lacks {expected:#?}:\n{}",
        server.stderr_text()
    );
}

per_backend!(
    status_header_sets_the_status,
    location_redirects,
    nph_script_sends_its_own_status_line,
    output_framing,
    broken_scripts_are_502_or_500,
    head_to_script_has_no_body,
    expect_100_continue,
    body_over_max_is_413,
    stderr_goes_to_the_error_log,
);

//! The request's host, under each event backend (RFC 9112 section 3.2):
//! a `Host` with userinfo, a path, several comma-separated values or a
//! bad port, and several `Host` lines, get 400 and a closed connection;
//! an absolute-form target (`GET http://h/p?q HTTP/1.1`) is served from
//! its path alone, the query split off where the authority ends; and a
//! CGI script's SERVER_NAME is the validated host, the absolute-form
//! target's authority winning over `Host`.

use tests::cgi::CgiSite;
use tests::{assert_bytes_eq, per_backend, site_docroot, ServerProcess};

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

/// Sends `raw` on a new connection and reads one response.
fn bad_hosts_are_400_and_close(backend: &str) {
    let server = site_server(backend);
    let heads = [
        "Host: user@127.0.0.1\r\n",
        "Host: 127.0.0.1/index.html\r\n",
        "Host: a.example, b.example\r\n",
        "Host: 127.0.0.1:http\r\n",
        "Host: 127.0.0.1:99999\r\n",
        "Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n",
        "Host: \r\n",
    ];
    for head in heads {
        let (mut conn, response) =
            server.send_raw(format!("GET /index.html HTTP/1.1\r\n{head}\r\n"));
        response.assert_error_page(400);
        conn.expect_closed();
    }
    let (mut conn, response) =
        server.send_raw("GET http://user@127.0.0.1/index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    response.assert_error_page(400);
    conn.expect_closed();
    // A valid host with a port is served.
    let (_, response) =
        server.send_raw("GET /index.html HTTP/1.1\r\nHost: Example.Test:8080\r\n\r\n");
    response.assert_status(200);
}

fn absolute_form_serves_the_path_part_only(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    // The query `x=/notes.txt` is not a path: the root's index is served.
    conn.send(b"GET http://example.test?x=/notes.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let response = conn.read_response();
    response.assert_status(200);
    assert_bytes_eq("http://h?x=/y", &response.body, &site.file("index.html"));
    conn.send(b"GET http://example.test/notes.txt?a HTTP/1.1\r\nHost: other.test\r\n\r\n");
    let response = conn.read_response();
    response.assert_status(200);
    assert_bytes_eq(
        "http://h/notes.txt",
        &response.body,
        &site.file("notes.txt"),
    );
}

fn server_name_is_the_validated_host(backend: &str) {
    let site = CgiSite::new("http-host");
    site.script(
        "cgi-bin/name.cgi",
        "printf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf '%s' \"$SERVER_NAME\"\n",
    );
    let server = ServerProcess::serve(site.root(), backend);
    let mut conn = server.connect();
    let cases = [
        ("/cgi-bin/name.cgi", "Host: named.test:8080", "named.test"),
        ("/cgi-bin/name.cgi", "Host: [::1]:8080", "::1"),
        (
            "http://absolute.test:81/cgi-bin/name.cgi",
            "Host: named.test",
            "absolute.test",
        ),
    ];
    for (target, host, expected) in cases {
        conn.send(format!("GET {target} HTTP/1.1\r\n{host}\r\n\r\n").as_bytes());
        let response = conn.read_response_dechunked();
        response.assert_status(200);
        assert_eq!(response.body_text(), expected, "{target} with {host}");
    }
}

per_backend!(
    bad_hosts_are_400_and_close,
    absolute_form_serves_the_path_part_only,
    server_name_is_the_validated_host,
);

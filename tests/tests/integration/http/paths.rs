//! Request paths against the contract, under each event backend: `..` that
//! climbs (plain and `%2e%2e`-encoded) is 400, `..` inside the root is
//! normalised, `%00` and bad percent-encoding are 400, dot-files are 403,
//! symlinks out of the root are 403 (their target never served), missing
//! files are 404 with the connection kept, directories redirect (query
//! kept), serve their index, or are 403 without one.

use tests::docroot::OUTSIDE_SECRET;
use tests::{assert_bytes_eq, per_backend, site_docroot, Connection, Response, ServerProcess};

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

/// Sends a raw GET for `target` (written as is) on a new connection.
fn raw_get(server: &ServerProcess, target: &str) -> (Connection, Response) {
    let mut conn = server.connect();
    conn.send(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let response = conn.read_response();
    (conn, response)
}

fn assert_never_leaks_secret(target: &str, response: &Response) {
    assert!(
        !response.body_text().contains(OUTSIDE_SECRET),
        "{target} served the file outside the root"
    );
}

/// 400 requests are answered and then the connection is closed.
fn assert_bad_request_closes(server: &ServerProcess, target: &str) {
    let (mut conn, response) = raw_get(server, target);
    assert_never_leaks_secret(target, &response);
    response.assert_error_page(400);
    conn.expect_closed();
}

fn dotdot_climbing_above_root_is_400(backend: &str) {
    let server = site_server(backend);
    for target in [
        "/../outside/secret.txt",
        "/../../../../etc/passwd",
        "/sub/../../outside/secret.txt",
        "/sub/../sub/../../outside/secret.txt",
    ] {
        assert_bad_request_closes(&server, target);
    }
}

fn encoded_dotdot_climbing_is_400(backend: &str) {
    let server = site_server(backend);
    for target in [
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/%2e./outside/secret.txt",
        "/..%2foutside/secret.txt",
        "/sub/..%2F..%2Foutside%2Fsecret.txt",
    ] {
        assert_bad_request_closes(&server, target);
    }
}

fn dotdot_within_root_is_normalised(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for (target, file) in [
        ("/a/../index.html", "index.html"),
        ("/sub/../notes.txt", "notes.txt"),
        ("/sub/%2e%2e/style.css", "style.css"),
        ("/x/y/../../sub/page.html", "sub/page.html"),
    ] {
        let response = conn.get(target);
        response.assert_status(200);
        assert_bytes_eq(target, &response.body, &site.file(file));
    }
}

fn nul_in_path_is_400(backend: &str) {
    let server = site_server(backend);
    for target in ["/index.html%00", "/index.html%00.txt", "/%00"] {
        assert_bad_request_closes(&server, target);
    }
}

fn bad_percent_encoding_is_400(backend: &str) {
    let server = site_server(backend);
    for target in ["/%zz.html", "/index%2.html", "/index.html%"] {
        assert_bad_request_closes(&server, target);
    }
}

fn percent_encoded_names_are_decoded(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let (_, response) = raw_get(&server, "/%69ndex%2Ehtml");
    response.assert_status(200);
    assert_bytes_eq("/%69ndex%2Ehtml", &response.body, &site.file("index.html"));
}

fn dot_files_are_403_and_keep_alive(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for target in [
        "/.secret",
        "/.hidden/file.txt",
        "/%2esecret",
        "/sub/../.secret",
    ] {
        let response = conn.get(target);
        response.assert_error_page(403);
        assert!(
            !response.body_text().contains("dot-file secret"),
            "{target} leaked the dot-file"
        );
        assert!(
            !response.connection_has("close"),
            "403 keeps the connection"
        );
    }
    let response = conn.get("/index.html");
    response.assert_status(200);
    assert_bytes_eq("/index.html", &response.body, &site.file("index.html"));
}

fn symlinks_out_of_root_are_403(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for target in ["/escape.txt", "/outdir/secret.txt"] {
        let response = conn.get(target);
        assert_never_leaks_secret(target, &response);
        response.assert_error_page(403);
        assert!(
            !response.connection_has("close"),
            "403 keeps the connection"
        );
    }
    // Also via HEAD and a Range request: the target's bytes never appear.
    let head = conn.request("HEAD", "/escape.txt", &[]);
    head.assert_status(403);
    let ranged = conn.request("GET", "/escape.txt", &[("Range", "bytes=0-5")]);
    assert_never_leaks_secret("/escape.txt (ranged)", &ranged);
    ranged.assert_error_page(403);
    conn.get("/index.html").assert_status(200);
}

fn missing_file_is_404_and_keeps_alive(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for target in ["/nope.html", "/sub/nope/deeper.html", "/index.html/x"] {
        let response = conn.get(target);
        response.assert_error_page(404);
        assert!(
            !response.connection_has("close"),
            "404 keeps the connection"
        );
    }
    let response = conn.get("/notes.txt");
    response.assert_status(200);
    assert_bytes_eq("/notes.txt", &response.body, &site.file("notes.txt"));
}

fn directory_without_slash_redirects_keeping_query(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    let response = conn.get("/sub");
    response.assert_status(301);
    assert_eq!(response.header("Location"), Some("/sub/"));
    let response = conn.get("/sub?x=1&y=two");
    response.assert_status(301);
    assert_eq!(response.header("Location"), Some("/sub/?x=1&y=two"));
}

fn directory_serves_its_index(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for (target, file) in [
        ("/", "index.html"),
        ("/sub/", "sub/index.html"),
        ("/sub/?q=1", "sub/index.html"),
    ] {
        let response = conn.get(target);
        response.assert_status(200);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/html; charset=utf-8"),
            "{target}"
        );
        assert_bytes_eq(target, &response.body, &site.file(file));
    }
}

fn directory_without_index_is_403(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    let response = conn.get("/noindex/");
    response.assert_error_page(403);
    assert!(
        !response.connection_has("close"),
        "403 keeps the connection"
    );
    // Its files are still served.
    let response = conn.get("/noindex/file.txt");
    response.assert_status(200);
    assert_bytes_eq(
        "/noindex/file.txt",
        &response.body,
        &site_docroot().file("noindex/file.txt"),
    );
}

per_backend!(
    dotdot_climbing_above_root_is_400,
    encoded_dotdot_climbing_is_400,
    dotdot_within_root_is_normalised,
    nul_in_path_is_400,
    bad_percent_encoding_is_400,
    percent_encoded_names_are_decoded,
    dot_files_are_403_and_keep_alive,
    symlinks_out_of_root_are_403,
    missing_file_is_404_and_keeps_alive,
    directory_without_slash_redirects_keeping_query,
    directory_serves_its_index,
    directory_without_index_is_403,
);

//! The environment a CGI script runs with, under each event backend: every
//! RFC 3875 meta-variable and the documented extras checked by value for a
//! GET with a query string and PATH_INFO, a POST with a body and an
//! HTTP/1.0 request; request headers as HTTP_* (joined when repeated,
//! dropped when the name holds `_`); httpoxy (`Proxy` never becomes
//! HTTP_PROXY); `Authorization` gives only AUTH_TYPE; and nothing of the
//! server's own environment leaks in (the server runs with a marker
//! variable, and the script's whole environment must be the expected set
//! plus what the shell itself adds).

use std::collections::BTreeMap;
use std::path::Path;

use tests::cgi::{request_with_body, CgiSite};
use tests::{per_backend, Connection, ServerProcess};

/// A variable only the server's environment holds.
const MARKER: (&str, &str) = ("AMPED_SECRET_MARKER", "1");

/// Names `/bin/sh` may add to the environment by itself.
const SHELL_ADDED: [&str; 3] = ["PWD", "SHLVL", "_"];

/// Prints the header block, then `env` (one NAME=value a line), then the
/// request body after a separator line.
const ENV_SCRIPT: &str = r#"printf 'Content-Type: text/plain\r\n\r\n'
env
printf '%s\n' '--- body ---'
head -c "${CONTENT_LENGTH:-0}"
"#;

fn env_site() -> CgiSite {
    let site = CgiSite::new("cgi-env");
    site.script("cgi-bin/env.cgi", ENV_SCRIPT);
    site
}

fn env_server(site: &CgiSite, backend: &str) -> ServerProcess {
    let root = site.root().to_str().expect("UTF-8 temp path");
    ServerProcess::start_with_env(&["--root", root, "--event-handler", backend], &[MARKER])
}

/// The script's environment and the body it read.
struct ScriptView {
    env: BTreeMap<String, String>,
    body: String,
}

/// Sends `raw` on `conn` and parses env.cgi's output.
fn run_env(conn: &mut Connection, raw: &[u8]) -> ScriptView {
    conn.send(raw);
    let response = conn.read_response_dechunked();
    response.assert_status(200);
    let text = response.body_text();
    let (env_text, body) = text
        .split_once("--- body ---\n")
        .unwrap_or_else(|| panic!("env.cgi output without the separator:\n{text}"));
    let mut env = BTreeMap::new();
    for line in env_text.lines() {
        let (name, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("env line without `=`: {line:?} in\n{env_text}"));
        assert!(
            env.insert(name.to_owned(), value.to_owned()).is_none(),
            "{name} twice in\n{env_text}"
        );
    }
    ScriptView {
        env,
        body: body.to_owned(),
    }
}

/// Checks that `env` is exactly `expected` plus shell-added names: every
/// expected value, nothing missing, nothing else (HTTP_* included).
fn assert_env_is(what: &str, env: &BTreeMap<String, String>, expected: &[(&str, String)]) {
    for (name, value) in expected {
        assert_eq!(
            env.get(*name),
            Some(value),
            "{what}: {name} (whole environment: {env:#?})"
        );
    }
    let extra: Vec<&String> = env
        .keys()
        .filter(|k| !expected.iter().any(|(n, _)| n == k) && !SHELL_ADDED.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: unexpected variables {extra:?} (whole environment: {env:#?})"
    );
    assert!(
        !env.contains_key(MARKER.0),
        "{what}: the server's own environment leaked"
    );
}

fn common_vars(
    root: &Path,
    server: &ServerProcess,
    conn: &Connection,
) -> Vec<(&'static str, String)> {
    let root = root.to_str().expect("UTF-8 root").to_owned();
    let local = conn.stream().local_addr().expect("local_addr");
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("SERVER_SOFTWARE", "amped/0.1.0".into()),
        ("REQUEST_SCHEME", "http".into()),
        ("SERVER_PORT", server.port().to_string()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REMOTE_HOST", "127.0.0.1".into()),
        ("REMOTE_PORT", local.port().to_string()),
        ("SCRIPT_NAME", "/cgi-bin/env.cgi".into()),
        ("SCRIPT_FILENAME", format!("{root}/cgi-bin/env.cgi")),
        ("DOCUMENT_ROOT", root),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
    ]
}

fn get_with_query_and_path_info(backend: &str) {
    let site = env_site();
    let server = env_server(&site, backend);
    let root = site.canonical_root();
    let mut conn = server.connect();
    let target = "/cgi-bin/env.cgi/extra/path%20x?a=1&b=%20c&a=2";
    let raw = format!(
        "GET {target} HTTP/1.1\r\n\
         Host: example.test:8080\r\n\
         User-Agent: cgi-env-test/1\r\n\
         Accept: text/plain\r\n\
         X-Multi: one\r\n\
         x-multi: two\r\n\
         X_Sneaky: must-not-pass\r\n\
         Proxy: http://evil.example:3128/\r\n\
         Authorization: Basic dXNlcjpwYXNz\r\n\
         \r\n"
    );
    let view = run_env(&mut conn, raw.as_bytes());
    let mut expected = common_vars(&root, &server, &conn);
    expected.extend([
        ("REQUEST_METHOD", "GET".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "example.test".into()),
        ("REQUEST_URI", target.into()),
        ("QUERY_STRING", "a=1&b=%20c&a=2".into()),
        ("PATH_INFO", "/extra/path x".into()),
        (
            "PATH_TRANSLATED",
            format!("{}/extra/path x", root.display()),
        ),
        ("AUTH_TYPE", "Basic".into()),
        ("HTTP_HOST", "example.test:8080".into()),
        ("HTTP_USER_AGENT", "cgi-env-test/1".into()),
        ("HTTP_ACCEPT", "text/plain".into()),
        ("HTTP_X_MULTI", "one, two".into()),
    ]);
    assert_env_is("GET with PATH_INFO", &view.env, &expected);
    // Spelled out, although assert_env_is already refuses them.
    for absent in [
        "HTTP_PROXY",
        "HTTP_AUTHORIZATION",
        "HTTP_X_SNEAKY",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
    ] {
        assert!(
            !view.env.contains_key(absent),
            "{absent} must not be set: {:#?}",
            view.env
        );
    }
    assert_eq!(view.body, "", "a GET has no body");
}

fn post_with_body(backend: &str) {
    let site = env_site();
    let server = env_server(&site, backend);
    let root = site.canonical_root();
    let mut conn = server.connect();
    let body = b"name=amped&msg=hello+world%21";
    let raw = request_with_body(
        "POST",
        "/cgi-bin/env.cgi",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Proxy", "http://evil.example/"),
        ],
        body,
    );
    let view = run_env(&mut conn, &raw);
    let mut expected = common_vars(&root, &server, &conn);
    expected.extend([
        ("REQUEST_METHOD", "POST".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "127.0.0.1".into()),
        ("REQUEST_URI", "/cgi-bin/env.cgi".into()),
        ("QUERY_STRING", String::new()),
        ("PATH_INFO", String::new()),
        ("AUTH_TYPE", String::new()),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded".into()),
        ("HTTP_HOST", "127.0.0.1".into()),
    ]);
    assert_env_is("POST", &view.env, &expected);
    assert!(
        !view.env.contains_key("PATH_TRANSLATED"),
        "PATH_TRANSLATED only with a PATH_INFO"
    );
    assert_eq!(view.body.as_bytes(), body, "the body the script read");

    // The same connection is kept (chunked response on HTTP/1.1); a
    // second request with another method still works.
    let raw = request_with_body("PUT", "/cgi-bin/env.cgi?x", &[], b"abc");
    let view = run_env(&mut conn, &raw);
    assert_eq!(
        view.env.get("REQUEST_METHOD").map(String::as_str),
        Some("PUT")
    );
    assert_eq!(view.env.get("QUERY_STRING").map(String::as_str), Some("x"));
    assert_eq!(
        view.env.get("CONTENT_LENGTH").map(String::as_str),
        Some("3")
    );
    assert!(
        !view.env.contains_key("CONTENT_TYPE"),
        "no Content-Type sent"
    );
    assert_eq!(view.body, "abc");
}

fn http10_request(backend: &str) {
    let site = env_site();
    let server = env_server(&site, backend);
    let root = site.canonical_root();
    let mut conn = server.connect();
    let raw = "GET /cgi-bin/env.cgi?q HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let view = run_env(&mut conn, raw.as_bytes());
    let mut expected = common_vars(&root, &server, &conn);
    expected.extend([
        ("REQUEST_METHOD", "GET".into()),
        ("SERVER_PROTOCOL", "HTTP/1.0".into()),
        ("SERVER_NAME", "localhost".into()),
        ("REQUEST_URI", "/cgi-bin/env.cgi?q".into()),
        ("QUERY_STRING", "q".into()),
        ("PATH_INFO", String::new()),
        ("AUTH_TYPE", String::new()),
        ("HTTP_HOST", "localhost".into()),
    ]);
    assert_env_is("HTTP/1.0", &view.env, &expected);
}

per_backend!(get_with_query_and_path_info, post_with_body, http10_request);

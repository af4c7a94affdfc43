//! CGI over HTTPS, under each event backend, on one server listening for
//! both (`--listen` and `--listen-tls`): a script that prints its
//! environment gets `HTTPS=on` and `REQUEST_SCHEME=https` (and the TLS
//! port as `SERVER_PORT`) through the TLS listener, and
//! `REQUEST_SCHEME=http` with no `HTTPS` at all through the plain one; a
//! POST body of binary bytes larger than the spool's memory part goes
//! through a script over HTTPS and comes back byte for byte.

use std::collections::BTreeMap;

use tests::cgi::CgiSite;
use tests::docroot::pseudo_random_bytes;
use tests::tls::{curl, make_certs, resolve, serve_tls, TestCerts};
use tests::{assert_bytes_eq, per_backend, ServerProcess, TempDocroot};

const ENV_SCRIPT: &str = r"printf 'Content-Type: text/plain\r\n\r\n'
env
";

/// Copies its whole body back.
const ECHO_SCRIPT: &str = r#"printf 'Content-Type: application/octet-stream\r\n\r\n'
head -c "${CONTENT_LENGTH:-0}"
"#;

/// A site with both scripts, certificates outside it, and a server
/// listening for plain HTTP and HTTPS.
fn start(tag: &str, backend: &str) -> (CgiSite, TempDocroot, TestCerts, ServerProcess) {
    let site = CgiSite::new(tag);
    site.script("cgi-bin/env.cgi", ENV_SCRIPT);
    site.script("cgi-bin/echo.cgi", ECHO_SCRIPT);
    // curl's files and the certificates, outside the document root.
    let scratch = TempDocroot::new(&format!("{tag}-scratch"));
    let certs = make_certs(&scratch.outside(), "a");
    let server = serve_tls(site.root(), &certs, backend, &[]);
    (site, scratch, certs, server)
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn https_common<'a>(certs: &'a TestCerts, resolve: &'a str) -> Vec<&'a str> {
    vec![
        "-sS",
        "--fail",
        "--max-time",
        "30",
        "--cacert",
        certs.ca.to_str().expect("utf-8"),
        "--resolve",
        resolve,
    ]
}

fn cgi_sees_the_scheme_of_its_listener(backend: &str) {
    let (_site, scratch, certs, server) = start("https-cgi-env", backend);
    let resolve = resolve(&server);
    let url = format!("https://localhost:{}/cgi-bin/env.cgi", server.tls_port());
    let mut args = https_common(&certs, &resolve);
    args.push(&url);
    let over_tls = parse_env(&String::from_utf8_lossy(&curl(&scratch, &args)));
    assert_eq!(
        over_tls.get("HTTPS").map(String::as_str),
        Some("on"),
        "over TLS: {over_tls:#?}"
    );
    assert_eq!(
        over_tls.get("REQUEST_SCHEME").map(String::as_str),
        Some("https"),
        "over TLS: {over_tls:#?}"
    );
    assert_eq!(
        over_tls.get("SERVER_PORT"),
        Some(&server.tls_port().to_string()),
        "over TLS: {over_tls:#?}"
    );

    let response = server.connect().get_dechunked("/cgi-bin/env.cgi");
    response.assert_status(200);
    let plain = parse_env(&response.body_text());
    assert_eq!(
        plain.get("REQUEST_SCHEME").map(String::as_str),
        Some("http"),
        "over plain HTTP: {plain:#?}"
    );
    assert_eq!(
        plain.get("HTTPS"),
        None,
        "HTTPS is set over plain HTTP: {plain:#?}"
    );
    assert_eq!(
        plain.get("SERVER_PORT"),
        Some(&server.port().to_string()),
        "over plain HTTP: {plain:#?}"
    );
}

fn a_post_body_through_a_script_over_https_comes_back_exact(backend: &str) {
    let (_site, scratch, certs, server) = start("https-cgi-post", backend);
    // Past the spool's 16 KiB in memory, every byte value.
    let body = pseudo_random_bytes(300 * 1024 + 17, 41);
    let upload = scratch.outside().join("upload.bin");
    std::fs::write(&upload, &body).expect("write the upload");
    let data = format!("@{}", upload.display());
    let resolve = resolve(&server);
    let url = format!("https://localhost:{}/cgi-bin/echo.cgi", server.tls_port());
    let mut args = https_common(&certs, &resolve);
    args.extend([
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &data,
        &url,
    ]);
    let echoed = curl(&scratch, &args);
    assert_bytes_eq("the POST body echoed over HTTPS", &echoed, &body);
}

per_backend!(
    cgi_sees_the_scheme_of_its_listener,
    a_post_body_through_a_script_over_https_comes_back_exact,
);

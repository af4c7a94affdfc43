//! Certificates, under epoll only: which certificate answers, and which
//! files load, is decided in the TLS configuration before any poller is
//! involved (the handshakes themselves run under each backend in
//! `https.rs` and `https_bad_input.rs`).
//!
//! - SNI chooses between two certificates (`a.test` and `b.test`, each
//!   from its own CA); a name that matches neither, and no name at all,
//!   get the first; with `--tls-strict-sni` both are refused with an
//!   `unrecognized_name` alert, as nginx's `ssl_reject_handshake` does;
//! - an RSA certificate serves as well as an ECDSA one, and a key loads
//!   as PKCS#8, as PKCS#1 (`BEGIN RSA PRIVATE KEY`) and as SEC1 (`BEGIN EC
//!   PRIVATE KEY`);
//! - `--check-config` exits 2 with one line on stderr naming the file for
//!   a missing certificate, a missing key, a key that does not match its
//!   certificate and an expired certificate, and 0 for a good pair; a key
//!   readable by every user loads with one warning naming it, at
//!   `--check-config` and at start-up (and again at each SIGHUP reload).

use std::path::Path;

use tests::procfs::poll_until;
use tests::status::STATUS_PATH;
use tests::tls::{
    curl_https, https_url, make_certs, make_certs_for, make_certs_with, s_client, s_client_bare,
    serve_tls, tls_error_count, tls_status, CertOptions, TestCerts, OPENSSL,
};
use tests::{run_with_deadline, server_bin, RunOutput, ServerProcess, TempDocroot, DEADLINE};

const VERIFIED: &str = "Verify return code: 0 (ok)";

/// A server on `site` with a TLS listener, every pair of `certs` in
/// order (the first is the default), the status page and `extra`.
fn serve_certs(site: &TempDocroot, certs: &[&TestCerts], extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--listen-tls", "127.0.0.1:0", "--status-path", STATUS_PATH];
    for pair in certs {
        let (_, cert, key) = pair.paths();
        args.extend(["--tls-cert", cert, "--tls-key", key]);
    }
    args.extend_from_slice(extra);
    ServerProcess::serve_with(site.path(), "epoll", &args)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// What `s_client` says with `name` as its SNI (`None`: no SNI at all)
/// verifying against `ca`.
fn handshake(server: &ServerProcess, name: Option<&str>, ca: &Path) -> String {
    let mut args = match name {
        Some(name) => vec!["-servername", name],
        None => vec!["-noservername"],
    };
    args.extend(["-CAfile", path(ca)]);
    s_client_bare(server, &args)
}

/// Asserts that the handshake for `name` got the certificate for
/// `subject` (its common name, as make_certs_for writes it) from the CA
/// `ca`.
fn assert_served(server: &ServerProcess, name: Option<&str>, ca: &Path, subject: &str) {
    let out = handshake(server, name, ca);
    assert!(
        out.contains(&format!("subject=CN = {subject}\n")),
        "SNI {name:?}: not the certificate of {subject}: {out}"
    );
    assert!(out.contains(VERIFIED), "SNI {name:?}: {out}");
}

#[test]
fn sni_chooses_between_two_certificates() {
    let site = TempDocroot::new("https-sni");
    site.write("index.html", b"x");
    let a = make_certs_for(&site.outside(), "a", &["a.test"]);
    let b = make_certs_for(&site.outside(), "b", &["b.test"]);
    let server = serve_certs(&site, &[&a, &b], &[]);
    assert_served(&server, Some("a.test"), &a.ca, "a.test a");
    assert_served(&server, Some("b.test"), &b.ca, "b.test b");
    // The two really differ: b's certificate does not verify with a's CA.
    let crossed = handshake(&server, Some("b.test"), &a.ca);
    assert!(
        !crossed.contains(VERIFIED),
        "b.test's certificate verified with a.test's CA: {crossed}"
    );
    // Names are matched without regard to case.
    assert_served(&server, Some("B.TEST"), &b.ca, "b.test b");
    // The default: the first certificate given.
    assert_served(&server, Some("c.test"), &a.ca, "a.test a");
    assert_served(&server, None, &a.ca, "a.test a");
    // The same with the order of the flags reversed: b is the default.
    let reversed = serve_certs(&site, &[&b, &a], &[]);
    assert_served(&reversed, Some("a.test"), &a.ca, "a.test a");
    assert_served(&reversed, Some("c.test"), &b.ca, "b.test b");
    assert_served(&reversed, None, &b.ca, "b.test b");
}

/// nginx's `ssl_reject_handshake on` answers a name it has no server for
/// (and a ClientHello with no name) with a fatal `unrecognized_name`
/// alert (112), which is what RFC 6066 (section 3) says a server that
/// aborts the handshake over the name sends.
#[test]
fn strict_sni_refuses_unknown_names_with_unrecognized_name() {
    let site = TempDocroot::new("https-strict-sni");
    site.write("index.html", b"x");
    let a = make_certs_for(&site.outside(), "a", &["a.test"]);
    let b = make_certs_for(&site.outside(), "b", &["b.test"]);
    let server = serve_certs(&site, &[&a, &b], &["--tls-strict-sni"]);
    assert_served(&server, Some("a.test"), &a.ca, "a.test a");
    assert_served(&server, Some("b.test"), &b.ca, "b.test b");
    let refused: Vec<(Option<&str>, String)> = [Some("c.test"), None]
        .into_iter()
        .map(|name| (name, handshake(&server, name, &a.ca)))
        .collect();
    for (name, out) in &refused {
        assert!(
            out.contains("no peer certificate available"),
            "SNI {name:?} got a certificate under --tls-strict-sni: {out}"
        );
    }
    let tls = tls_status(&server);
    assert_eq!(
        tls_error_count(&tls, "certificate"),
        2,
        "the refusals are counted as certificate errors: {tls}"
    );
    for (name, out) in &refused {
        assert!(
            out.contains("SSL alert number 112"),
            "SNI {name:?}: not refused with unrecognized_name (112): {out}"
        );
    }
}

/// The first line of a PEM file.
fn pem_label(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read the key");
    text.lines().next().unwrap_or_default().to_owned()
}

/// `openssl args...`, which must succeed.
fn openssl(args: &[&str]) {
    let output = run_with_deadline(Path::new(OPENSSL), args, DEADLINE);
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        output.combined()
    );
}

/// A copy of `certs` whose key is rewritten by `openssl convert... -in KEY
/// -out NEW` into `tag`'s file, mode 0600.
fn with_converted_key(certs: &TestCerts, convert: &[&str], tag: &str) -> TestCerts {
    let key = certs.key.with_file_name(format!("key-{tag}.pem"));
    let mut args = convert.to_vec();
    args.extend(["-in", path(&certs.key), "-out", path(&key)]);
    openssl(&args);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    TestCerts {
        ca: certs.ca.clone(),
        cert: certs.cert.clone(),
        key,
    }
}

/// A server with `certs` alone serves `index` to curl trusting its CA,
/// and s_client sees a public key of `bits` bits.
fn assert_serves(site: &TempDocroot, certs: &TestCerts, bits: u32, what: &str) {
    let server = serve_tls(site.path(), certs, "epoll", &[]);
    let out = s_client(&server, &["-CAfile", path(&certs.ca)]);
    assert!(out.contains(VERIFIED), "{what}: {out}");
    assert!(
        out.contains(&format!("Server public key is {bits} bit")),
        "{what}: not a {bits}-bit key: {out}"
    );
    let url = https_url(&server, "/index.html");
    let page = curl_https(site, &certs.ca, server.tls_port(), &[&url]);
    assert_eq!(page, b"key formats\n", "{what}");
}

#[test]
fn rsa_and_ecdsa_certificates_load_from_every_key_format() {
    let site = TempDocroot::new("https-key-formats");
    site.write("index.html", b"key formats\n");
    let dir = site.outside();
    let ecdsa = make_certs(&dir, "ec");
    let rsa = make_certs_with(
        &dir,
        "rsa",
        &CertOptions {
            rsa: true,
            ..CertOptions::default()
        },
    );
    assert_eq!(pem_label(&ecdsa.key), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(pem_label(&rsa.key), "-----BEGIN PRIVATE KEY-----");
    let rsa_pkcs1 = with_converted_key(&rsa, &["pkey", "-traditional"], "rsa-pkcs1");
    assert_eq!(pem_label(&rsa_pkcs1.key), "-----BEGIN RSA PRIVATE KEY-----");
    let ec_sec1 = with_converted_key(&ecdsa, &["ec"], "ec-sec1");
    assert_eq!(pem_label(&ec_sec1.key), "-----BEGIN EC PRIVATE KEY-----");
    assert_serves(&site, &ecdsa, 256, "ECDSA P-256, PKCS#8 key");
    assert_serves(&site, &rsa, 2048, "RSA 2048, PKCS#8 key");
    assert_serves(&site, &rsa_pkcs1, 2048, "RSA 2048, PKCS#1 key");
    assert_serves(&site, &ec_sec1, 256, "ECDSA P-256, SEC1 key");
}

/// `server --check-config` with a TLS listener, `cert` and `key`.
fn check_config(site: &TempDocroot, cert: &Path, key: &Path) -> RunOutput {
    let root = path(site.path());
    let args = [
        "--root",
        root,
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        path(cert),
        "--tls-key",
        path(key),
        // Small, so that no descriptor-limit warning joins the output.
        "--max-connections",
        "64",
        "--cache-files",
        "64",
        "--check-config",
    ];
    run_with_deadline(&server_bin(), &args, DEADLINE)
}

/// Asserts that `--check-config` refused with status 2 and one line on
/// stderr naming `file` and saying `why`.
fn assert_refused(output: &RunOutput, file: &Path, why: &str, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "{what}: {}",
        output.combined()
    );
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {:?}", output.stderr);
    assert!(
        lines[0].contains(path(file)) && lines[0].contains(why),
        "{what}: the line does not name {} ({why}): {}",
        file.display(),
        lines[0]
    );
}

#[test]
fn check_config_names_the_certificate_file_that_fails() {
    let site = TempDocroot::new("https-check-config");
    let dir = site.outside();
    let good = make_certs(&dir, "good");
    let other = make_certs(&dir, "other");
    let expired = make_certs_with(
        &dir,
        "expired",
        &CertOptions {
            expired: true,
            ..CertOptions::default()
        },
    );
    let missing = dir.join("missing.pem");

    let ok = check_config(&site, &good.cert, &good.key);
    assert_eq!(ok.status.code(), Some(0), "{}", ok.combined());
    assert!(ok.stdout.contains("configuration OK"), "{}", ok.combined());
    assert!(
        !ok.stderr.contains(path(&good.key)) && !ok.stderr.contains(path(&good.cert)),
        "a good pair was complained about: {}",
        ok.stderr
    );
    assert_refused(
        &check_config(&site, &missing, &good.key),
        &missing,
        "cannot read",
        "a missing certificate",
    );
    assert_refused(
        &check_config(&site, &good.cert, &missing),
        &missing,
        "cannot read",
        "a missing key",
    );
    assert_refused(
        &check_config(&site, &good.cert, &other.key),
        &other.key,
        "does not match",
        "a key that is not the certificate's",
    );
    assert_refused(
        &check_config(&site, &expired.cert, &expired.key),
        &expired.cert,
        "expired",
        "an expired certificate",
    );
}

/// The lines of `text` that warn about `key` being readable by everyone.
fn readable_key_warnings(text: &str, key: &Path) -> usize {
    text.lines()
        .filter(|line| line.contains(path(key)) && line.contains("readable by every user"))
        .count()
}

#[test]
fn a_world_readable_key_loads_with_one_warning() {
    let site = TempDocroot::new("https-readable-key");
    site.write("index.html", b"readable\n");
    let certs = make_certs(&site.outside(), "a");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&certs.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let checked = check_config(&site, &certs.cert, &certs.key);
    assert_eq!(checked.status.code(), Some(0), "{}", checked.combined());
    assert_eq!(
        readable_key_warnings(&checked.stderr, &certs.key),
        1,
        "--check-config: {}",
        checked.stderr
    );

    let server = serve_tls(site.path(), &certs, "epoll", &[]);
    let out = s_client(&server, &["-CAfile", path(&certs.ca)]);
    assert!(out.contains(VERIFIED), "the key did not load: {out}");
    // Everything start-up logs comes before the line SIGHUP logs first;
    // the reload after it warns once more.
    assert!(tests::procfs::send_signal(server.pid_t(), libc::SIGHUP));
    let reloaded = poll_until(DEADLINE, || {
        server
            .stderr_text()
            .contains("SIGHUP: reloaded the TLS certificates")
    });
    let stderr = server.stderr_text();
    assert!(reloaded, "no reload: {stderr}");
    let (start_up, reload) = stderr
        .split_once("SIGHUP: reopened the logs")
        .unwrap_or_else(|| panic!("no SIGHUP line: {stderr}"));
    assert_eq!(
        readable_key_warnings(reload, &certs.key),
        1,
        "at the reload: {stderr}"
    );
    assert_eq!(
        readable_key_warnings(start_up, &certs.key),
        1,
        "at start-up: {stderr}"
    );
}

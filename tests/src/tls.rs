//! HTTPS fixtures: a test CA and server certificates it signs (made with
//! rcgen, written as PEM files), a server started with them, and the real
//! clients' command lines (curl trusting the CA, `openssl s_client`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::status::{status_json, status_number, STATUS_PATH};
use crate::{run_with_deadline, ServerProcess, TempDocroot, DEADLINE};

/// curl, as Debian installs it.
pub const CURL: &str = "/usr/bin/curl";
/// openssl, as Debian installs it.
pub const OPENSSL: &str = "/usr/bin/openssl";

/// A test CA and a server certificate it signed, as PEM files.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// `--listen-tls 127.0.0.1:0 --tls-cert CERT --tls-key KEY`.
    pub fn listen_args(&self) -> [&str; 6] {
        let (_, cert, key) = self.paths();
        [
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]
    }

    /// The three paths as `&str` (CA, certificate, key).
    pub fn paths(&self) -> (&str, &str, &str) {
        (utf8(&self.ca), utf8(&self.cert), utf8(&self.key))
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A CA of its own and a certificate for `localhost` it signed, written
/// under `dir` with `tag` in their names; the key is mode 0600.
pub fn make_certs(dir: &Path, tag: &str) -> TestCerts {
    make_certs_for(dir, tag, &["localhost"])
}

/// Like [`make_certs`], for the DNS `names` given (the first is also the
/// subject's common name).
pub fn make_certs_for(dir: &Path, tag: &str, names: &[&str]) -> TestCerts {
    make_certs_with(
        dir,
        tag,
        &CertOptions {
            names,
            ..CertOptions::default()
        },
    )
}

/// What [`make_certs_with`] makes: the server certificate's names, its
/// key's kind, and whether it has already expired.
#[derive(Debug, Clone, Copy)]
pub struct CertOptions<'a> {
    /// The DNS names (the first is also the subject's common name).
    pub names: &'a [&'a str],
    /// An RSA 2048 key (signed with SHA-256) instead of ECDSA P-256.
    pub rsa: bool,
    /// Valid from 2000 until 2001 only.
    pub expired: bool,
}

impl Default for CertOptions<'_> {
    fn default() -> Self {
        CertOptions {
            names: &["localhost"],
            rsa: false,
            expired: false,
        }
    }
}

/// A CA of its own (ECDSA) and a server certificate it signed as `options`
/// say, written under `dir` with `tag` in their names; the key (PKCS#8)
/// is mode 0600.
pub fn make_certs_with(dir: &Path, tag: &str, options: &CertOptions<'_>) -> TestCerts {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("amped test CA {tag}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = if options.rsa {
        KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA server key")
    } else {
        KeyPair::generate().expect("server key")
    };
    let names: Vec<String> = options.names.iter().map(|n| n.to_string()).collect();
    let common_name = format!(
        "{} {tag}",
        names.first().map_or("localhost", |n| n.as_str())
    );
    let mut params = CertificateParams::new(names).expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    if options.expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let paths = TestCerts {
        ca: dir.join(format!("ca-{tag}.pem")),
        cert: dir.join(format!("cert-{tag}.pem")),
        key: dir.join(format!("key-{tag}.pem")),
    };
    std::fs::write(&paths.ca, ca.pem()).expect("write CA");
    std::fs::write(&paths.cert, cert.pem()).expect("write cert");
    std::fs::write(&paths.key, key.serialize_pem()).expect("write key");
    std::fs::set_permissions(&paths.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    paths
}

/// A server on the document root `root` with one TLS listener (an
/// OS-chosen port, beside the fixture's plain one) and `certs`, plus
/// `extra` arguments.
pub fn serve_tls(root: &Path, certs: &TestCerts, backend: &str, extra: &[&str]) -> ServerProcess {
    let mut args = certs.listen_args().to_vec();
    args.extend_from_slice(extra);
    ServerProcess::serve_with(root, backend, &args)
}

/// A site holding `index` as its `index.html`, a CA and a certificate
/// `a` outside its root, and a server on it with HTTPS.
pub fn tls_site(tag: &str, index: &[u8], backend: &str) -> (TempDocroot, TestCerts, ServerProcess) {
    let site = TempDocroot::new(tag);
    site.write("index.html", index);
    let certs = make_certs(&site.outside(), "a");
    let server = serve_tls(site.path(), &certs, backend, &[]);
    (site, certs, server)
}

/// What curl downloads with `args` (through a file, as bytes), failing
/// the test if curl fails.
pub fn curl(site: &TempDocroot, args: &[&str]) -> Vec<u8> {
    let out = site.outside().join("curl.out");
    let mut all = vec!["-o", out.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let output = run_with_deadline(Path::new(CURL), &all, DEADLINE);
    assert!(output.status.success(), "curl {args:?}: {}", output.stderr);
    std::fs::read(&out).expect("curl's output")
}

/// What curl downloads with `args` (the URL among them) trusting the CA
/// `ca`, with `localhost` on `port` sent to 127.0.0.1 (`-sS`, 30 s at
/// most), failing the test if curl fails.
pub fn curl_https(site: &TempDocroot, ca: &Path, port: u16, args: &[&str]) -> Vec<u8> {
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut all = vec![
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        utf8(ca),
        "--resolve",
        &resolve,
    ];
    all.extend_from_slice(args);
    curl(site, &all)
}

/// `https://localhost:PORT{path}` on the server's first TLS listener.
pub fn https_url(server: &ServerProcess, path: &str) -> String {
    format!("https://localhost:{}{path}", server.tls_port())
}

/// curl's `--resolve` value sending `localhost` on the TLS port to
/// 127.0.0.1.
pub fn resolve(server: &ServerProcess) -> String {
    format!("localhost:{}:127.0.0.1", server.tls_port())
}

/// `openssl s_client` to the TLS port with SNI `localhost` and `args`,
/// stdin closed; its stdout and stderr together.
pub fn s_client(server: &ServerProcess, args: &[&str]) -> String {
    let mut all = vec!["-servername", "localhost"];
    all.extend_from_slice(args);
    s_client_bare(server, &all)
}

/// `openssl s_client` to the TLS port with only `args` (no `-servername`
/// of its own: pass one, or `-noservername`), stdin closed; its stdout and
/// stderr together.
pub fn s_client_bare(server: &ServerProcess, args: &[&str]) -> String {
    let connect = format!("127.0.0.1:{}", server.tls_port());
    let mut all = vec!["s_client", "-connect", &connect];
    all.extend_from_slice(args);
    let output = run_with_deadline(Path::new(OPENSSL), &all, DEADLINE);
    format!("{}{}", output.stdout, output.stderr)
}

/// Debian's Python, whose `ssl` module is the HTTPS client of the tests
/// that need one they can drive request by request.
pub const PYTHON: &str = "/usr/bin/python3";

/// Writes `script` as `dir/name` and runs it with [`PYTHON`] and `args`
/// (within [`DEADLINE`]); what it did, whatever its exit status.
pub fn run_python(dir: &Path, name: &str, script: &str, args: &[&str]) -> crate::RunOutput {
    let path = dir.join(name);
    std::fs::write(&path, script).expect("write the Python script");
    let mut all = vec![utf8(&path)];
    all.extend_from_slice(args);
    run_with_deadline(Path::new(PYTHON), &all, DEADLINE)
}

/// The `tls` object of the status page (the server needs
/// `--status-path` [`STATUS_PATH`]), fetched over plain HTTP.
pub fn tls_status(server: &ServerProcess) -> serde_json::Value {
    let status = status_json(server, STATUS_PATH);
    status
        .get("tls")
        .cloned()
        .unwrap_or_else(|| panic!("the status page has no tls object: {status}"))
}

/// One of the status page's TLS error counters (`decode`, `incomplete`,
/// ...), from [`tls_status`].
pub fn tls_error_count(tls: &serde_json::Value, kind: &str) -> u64 {
    status_number(tls, &format!("/errors/{kind}"))
}

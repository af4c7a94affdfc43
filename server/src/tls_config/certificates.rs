//! Certificates: a PEM chain and its key loaded and checked (the key
//! matches, the certificate has not expired, the key file is not readable
//! by everyone), and the set of them that answers each handshake by the
//! name the client asked for (SNI).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::x509;

/// A certificate chain's file and its key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A loaded certificate.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// The names it is for, lower case (`*.example.org` for a wildcard).
    pub(crate) names: Vec<String>,
    /// A warning to log (a key file readable by everyone).
    pub(crate) warning: Option<String>,
}

/// Loads and checks one pair; the error is one line naming the file.
pub(crate) fn load(files: &CertFiles, provider: &CryptoProvider) -> Result<Loaded, String> {
    let (cert_path, key_path) = (files.cert.display(), files.key.display());
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert_path}: not a PEM certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{cert_path}: no PEM certificate in it"));
    };
    let facts =
        x509::facts(leaf).ok_or_else(|| format!("{cert_path}: cannot read its certificate"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if facts.not_after < now {
        let when = UNIX_EPOCH + Duration::from_secs(facts.not_after.max(0) as u64);
        return Err(format!(
            "{cert_path}: the certificate expired on {}",
            httpdate::fmt_http_date(when)
        ));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| format!("{key_path}: no private key in it (PEM, PKCS#8, SEC1 or RSA)"))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{key_path}: the key does not match the certificate in {cert_path}")
        }
        other => format!("{key_path}: {other}"),
    })?;
    let world_readable =
        std::fs::metadata(&files.key).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    let warning = world_readable
        .then(|| format!("{key_path}: the private key is readable by every user (chmod 600 it)"));
    Ok(Loaded {
        key: Arc::new(certified),
        names: facts.names,
        warning,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// The certificates a handshake is answered with: by the name the client
/// sent (exact, then `*.` one label up), else the default one (the
/// first loaded, with any others for its first name), or none at all
/// when `strict` (the handshake fails with an alert).
#[derive(Debug)]
pub(crate) struct CertificateSet {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
    strict: bool,
}

impl CertificateSet {
    pub(crate) fn new(loaded: &[Loaded], strict: bool) -> CertificateSet {
        let mut set = CertificateSet {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: Vec::new(),
            strict,
        };
        for cert in loaded {
            for name in &cert.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut set.wildcard, parent),
                    None => (&mut set.exact, name.as_str()),
                };
                map.entry(key.to_string())
                    .or_default()
                    .push(cert.key.clone());
            }
        }
        if let Some(first) = loaded.first() {
            set.default = first
                .names
                .first()
                .and_then(|name| match name.strip_prefix("*.") {
                    Some(parent) => set.wildcard.get(parent),
                    None => set.exact.get(name),
                })
                .cloned()
                .unwrap_or_else(|| vec![first.key.clone()]);
        }
        set
    }

    /// The certificates for `name`, if any is for it.
    fn named(&self, name: &str) -> Option<&Vec<Arc<CertifiedKey>>> {
        let name = name.to_ascii_lowercase();
        self.exact.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }
}

impl ResolvesServerCert for CertificateSet {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let candidates = match hello.server_name().and_then(|name| self.named(name)) {
            Some(named) => named,
            None if self.strict => {
                crate::transport::name_refused();
                return None;
            }
            None => &self.default,
        };
        // The first the client can verify (ECDSA or RSA), else the first.
        let schemes = hello.signature_schemes();
        candidates
            .iter()
            .find(|key| key.key.choose_scheme(schemes).is_some())
            .or_else(|| candidates.first())
            .cloned()
    }
}

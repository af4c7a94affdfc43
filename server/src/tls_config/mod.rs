//! What TLS runs with: the protocol settings, the certificates (loaded,
//! checked, chosen by SNI: `certificates.rs`), the session tickets whose
//! keys rotate and are shared by the workers (`tickets.rs`), and the
//! reload on SIGHUP that swaps them for new handshakes only.
//!
//! The settings are the ones a TLS scanner calls best practice: TLS 1.2
//! and 1.3 only; AEAD suites with forward secrecy only (rustls's
//! aws-lc-rs provider has no others); no compression and no
//! renegotiation (rustls implements neither); no 0-RTT data; ALPN
//! `h2`, then `http/1.1`.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;

mod certificates;
mod tickets;
mod x509;

pub(crate) use certificates::CertFiles;
pub(crate) use tickets::{RotatingTickets, TicketSeed};

/// TLS sessions a process remembers by id (TLS 1.2 clients without
/// tickets).
const SESSION_CACHE: usize = 16 * 1024;

/// The certificate files and what to do with names that match none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The first is the default certificate.
    pub(crate) certs: Vec<CertFiles>,
    /// A name that matches no certificate (or no name at all) fails the
    /// handshake rather than getting the default certificate.
    pub(crate) strict_sni: bool,
}

/// The ALPN protocols offered, most preferred first: HTTP/2, then
/// HTTP/1.1 (a client that offers neither is refused).
pub(crate) const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Loads every certificate and checks it; one line naming the file if
/// one fails. Warnings (a key readable by everyone) are returned.
pub(crate) fn check(files: &TlsFiles) -> Result<Vec<String>, String> {
    let provider = provider();
    let mut warnings = Vec::new();
    for pair in &files.certs {
        warnings.extend(certificates::load(pair, &provider)?.warning);
    }
    Ok(warnings)
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Everything new TLS sessions are made with, kept across reloads.
#[derive(Debug)]
pub(crate) struct TlsSetup {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    tickets: Arc<RotatingTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl TlsSetup {
    /// With the ticket keys from `seed` (a `--workers` parent's, or this
    /// process's own).
    pub(crate) fn new(files: TlsFiles, seed: TicketSeed) -> TlsSetup {
        TlsSetup {
            files,
            provider: Arc::new(provider()),
            tickets: Arc::new(RotatingTickets::new(seed)),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE),
        }
    }

    /// Loads the certificates (again) into a configuration for new
    /// handshakes, with the warnings to log (a world-readable key); an
    /// error names the file and leaves the caller's configuration as it
    /// was.
    pub(crate) fn load(&self) -> Result<(Arc<ServerConfig>, Vec<String>), String> {
        let mut loaded = Vec::with_capacity(self.files.certs.len());
        let mut warnings = Vec::new();
        for pair in &self.files.certs {
            let mut cert = certificates::load(pair, &self.provider)?;
            warnings.extend(cert.warning.take());
            loaded.push(cert);
        }
        let resolver = certificates::CertificateSet::new(&loaded, self.files.strict_sni);
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS settings refused: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        config.ticketer = self.tickets.clone();
        config.session_storage = self.sessions.clone();
        config.max_early_data_size = 0;
        Ok((Arc::new(config), warnings))
    }
}

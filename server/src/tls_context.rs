//! The server's TLS state: the configuration new sessions are made with
//! (swapped on SIGHUP when the certificates load again; sessions already
//! open keep the one they began with), and the counters every session
//! adds to.

use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Result;
use rustls::ServerConfig;

use crate::tls_config::TlsSetup;
use crate::transport::{TlsCounters, TlsSession, TlsStats};

/// What TLS sessions are made with.
#[derive(Debug)]
pub(crate) struct TlsContext {
    setup: TlsSetup,
    config: Arc<ServerConfig>,
    counters: Rc<TlsCounters>,
}

impl TlsContext {
    /// Loads the certificates; an error names the file. Their warnings
    /// were logged when the configuration was checked.
    pub(crate) fn new(setup: TlsSetup) -> Result<TlsContext> {
        let (config, _warned_at_check) = setup.load().map_err(anyhow::Error::msg)?;
        Ok(TlsContext {
            setup,
            config,
            counters: Rc::default(),
        })
    }

    /// A session for a just accepted client.
    pub(crate) fn session(&self, stream: TcpStream) -> std::io::Result<TlsSession> {
        TlsSession::accept(stream, self.config.clone(), self.counters.clone())
    }

    /// Loads the certificates again for new handshakes; one that fails
    /// leaves the ones in use, with an error-log line naming the file.
    pub(crate) fn reload(&mut self) {
        match self.setup.load() {
            Ok((config, warnings)) => {
                warnings.iter().for_each(|w| warn_log!("{w}"));
                self.config = config;
                info_log!("SIGHUP: reloaded the TLS certificates");
            }
            Err(e) => error_log!("SIGHUP: {e}; the certificates in use stay"),
        }
    }

    pub(crate) fn stats(&self) -> TlsStats {
        self.counters.stats()
    }
}

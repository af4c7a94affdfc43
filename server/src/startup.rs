//! Start-up, in the order it must happen: the process's own settings
//! (descriptor limit, subreaper), the poller, the listening socket (bound,
//! or passed by systemd) and systemd's notification socket, the
//! signal handlers, the access log and the error log file (all while
//! still privileged), then `--user`, then the children, whose handshakes are waited for; only
//! then do the listener and the signals join the poller.

use anyhow::{Context, Result};
use protocol::log_file;

use crate::access_log::AccessLog;
use crate::cgi::driver::Cgi;
use crate::config::Config;
use crate::event::{new_poller, Interest, Poller};
use crate::http::clock::Clock;
use crate::inherited_fds::{WORKER_LISTENERS_FD, WORKER_READY_FD};
use crate::listener::{self, bind_listening, Acceptor};
use crate::privileges;
use crate::signals::Signals;
use crate::supervise::{orphans, Supervision};
use crate::systemd::{self, Notifier};
use crate::tls_config::{TicketSeed, TlsSetup};
use crate::token::EventToken;

/// Everything the loop is made of that start-up prepares.
pub(crate) struct Parts {
    pub(crate) poller: Box<dyn Poller>,
    pub(crate) acceptors: Vec<Acceptor>,
    /// What TLS sessions are made with, when a listener speaks TLS.
    pub(crate) tls: Option<TlsSetup>,
    pub(crate) signals: Signals,
    pub(crate) log: AccessLog,
    pub(crate) clock: Clock,
    pub(crate) supervision: Supervision,
    pub(crate) cgi: Cgi,
    pub(crate) notifier: Option<Notifier>,
}

/// With `--error-log`: puts the file on this process's stderr (reopened
/// on SIGHUP) and names it for the children, which inherit it. Without,
/// makes sure the children follow no file named in the environment.
fn open_error_log(config: &Config) -> Result<()> {
    match &config.error_log {
        Some(path) => {
            log_file::redirect_stderr(path)
                .with_context(|| format!("cannot open the error log {}", path.display()))?;
            std::env::set_var(log_file::ENV_VAR, path);
        }
        None => std::env::remove_var(log_file::ENV_VAR),
    }
    Ok(())
}

/// Binds, starts the children and registers everything.
pub(crate) fn prepare(config: &Config) -> Result<Parts> {
    let short_of_descriptors = raise_descriptor_limit(config);
    orphans::become_subreaper();
    let mut poller = new_poller(config.backend)
        .with_context(|| format!("cannot create the {} poller", config.backend.name()))?;
    let (listeners, notifier) = if config.worker {
        let mut listeners = Vec::new();
        for (i, &tls) in config.worker_sockets.iter().enumerate() {
            let fd = WORKER_LISTENERS_FD + i as i32;
            let listener = systemd::adopt_listener(fd, "a workers' listening socket")?;
            listeners.push((listener, tls));
        }
        (listeners, Some(Notifier::inherited(WORKER_READY_FD)?))
    } else {
        (open_listeners(config)?, Notifier::from_env())
    };
    let mut acceptors = Vec::with_capacity(listeners.len());
    for (i, (listener, tls)) in listeners.into_iter().enumerate() {
        acceptors.push(Acceptor::adopt(listener, i, tls).context("cannot use a listening socket")?);
    }
    let tls = match &config.tls {
        Some(files) if acceptors.iter().any(Acceptor::is_tls) => {
            // A worker's keys come from its parent, so that a client
            // resumes whichever worker it reaches.
            let handed = notifier
                .as_ref()
                .filter(|_| config.worker)
                .and_then(Notifier::handed);
            let seed = match handed.as_deref().and_then(TicketSeed::from_bytes) {
                Some(seed) => seed,
                None => TicketSeed::generate().map_err(anyhow::Error::msg)?,
            };
            Some(TlsSetup::new(files.clone(), seed))
        }
        _ => None,
    };
    let signals = Signals::install().context("cannot install signal handlers")?;
    let log = AccessLog::open(&config.access_log, config.access_log_format)
        .context("cannot open the access log")?;
    open_error_log(config)?;
    // Told once the error log is in place, so that it goes there.
    if let Some(short) = short_of_descriptors {
        warn_log!("{short}");
    }
    if let Some(user) = &config.user {
        privileges::drop_to(user)?;
    }
    let clock = Clock::new();
    let mut supervision = Supervision::new(config, clock.now());
    let mut cgi = Cgi::new(config, clock.now());
    supervision.start(cgi.runner(), poller.as_mut())?;
    if config.user.is_none() && nix::unistd::Uid::effective().is_root() {
        warn_log!("running as root without --user: the helpers and CGI scripts run as root too");
    }
    for acceptor in &acceptors {
        acceptor.register(poller.as_mut())?;
    }
    let token = EventToken::Signals.to_token();
    poller.register(signals.fd(), token, Interest::READABLE)?;
    Ok(Parts {
        poller,
        acceptors,
        tls,
        signals,
        log,
        clock,
        supervision,
        cgi,
        notifier,
    })
}

/// The listening sockets of a server that is not a worker, each with
/// whether it speaks TLS: those systemd passed, else one bound for each
/// address of the configuration.
pub(crate) fn open_listeners(config: &Config) -> Result<Vec<(std::net::TcpListener, bool)>> {
    let listeners = match systemd::inherited_listeners()? {
        Some(passed) => passed,
        None => {
            let mut bound = Vec::with_capacity(config.listeners.len());
            for on in &config.listeners {
                let listener = bind_listening(on.addr)
                    .with_context(|| format!("cannot listen on {}", on.addr))?;
                bound.push((listener, on.tls));
            }
            bound
        }
    };
    if config.tls.is_none() && listeners.iter().any(|(_, tls)| *tls) {
        anyhow::bail!("a TLS socket needs a certificate: --tls-cert and --tls-key");
    }
    Ok(listeners)
}

/// Raises the descriptor limit to the hard limit; returns what to tell
/// the operator when that cannot hold what the options may use (logged
/// by the caller: at start-up once the error log is open, and by
/// `--check-config`).
pub(crate) fn raise_descriptor_limit(config: &Config) -> Option<String> {
    let wanted = Wanted {
        connections: config.max_connections,
        cache_files: config.cache_files,
        scripts: config.cgi_max_procs,
    };
    listener::raise_descriptor_limit().and_then(|limit| descriptors_short(wanted, limit))
}

/// What the options may hold open at once, in descriptors' terms.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// `--max-connections`: a socket each.
    connections: usize,
    /// `--cache-files`: an open file each.
    cache_files: usize,
    /// `--cgi-max-procs`: each running script's two pipe ends.
    scripts: usize,
}

/// Descriptors the server keeps for itself whatever its load: the
/// listener, the poller, the signal pipe, the logs, the children's
/// sockets and the shared read buffer, with room to spare.
const OWN_DESCRIPTORS: u64 = 64;

/// What to tell the operator when the descriptor limit cannot hold a
/// socket for each of `--max-connections`, an open file for each of
/// `--cache-files` and two pipes for each of `--cgi-max-procs`: past the
/// limit new connections wait in the backlog, and lookups of large files
/// and scripts answer 503. None when it can.
fn descriptors_short(wanted: Wanted, limit: u64) -> Option<String> {
    let Wanted {
        connections,
        cache_files,
        scripts,
    } = wanted;
    let total = connections as u64 + cache_files as u64 + 2 * scripts as u64 + OWN_DESCRIPTORS;
    (total > limit).then(|| {
        format!(
            "the descriptor limit ({limit}) is below what --max-connections ({connections}), \
             --cache-files ({cache_files}) and --cgi-max-procs ({scripts}, two pipes each) may \
             use, with {OWN_DESCRIPTORS} for the server's own ({total} in all): at the limit, \
             new connections wait and large files and scripts answer 503; raise the limit \
             (ulimit -n, systemd's LimitNOFILE=) or lower those options"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_short_of_the_options_is_told_with_the_numbers() {
        let wanted = Wanted {
            connections: 1000,
            cache_files: 100,
            scripts: 10,
        };
        assert_eq!(descriptors_short(wanted, 1184), None);
        let told = descriptors_short(wanted, 1183).expect("short by one");
        for part in [
            "(1183)",
            "--max-connections (1000)",
            "--cache-files (100)",
            "--cgi-max-procs (10, two pipes each)",
            "(1184 in all)",
        ] {
            assert!(told.contains(part), "{part} in {told}");
        }
    }
}

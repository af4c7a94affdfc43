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
use crate::inherited_fds::{WORKER_LISTENER_FD, WORKER_READY_FD};
use crate::listener::{self, Acceptor};
use crate::privileges;
use crate::signals::Signals;
use crate::supervise::{orphans, Supervision};
use crate::systemd::{self, Notifier};
use crate::token::EventToken;

/// Everything the loop is made of that start-up prepares.
pub(crate) struct Parts {
    pub(crate) poller: Box<dyn Poller>,
    pub(crate) acceptor: Acceptor,
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
    let (acceptor, notifier) = if config.worker {
        let listener =
            systemd::adopt_listener(WORKER_LISTENER_FD, "the workers' listening socket")?;
        let acceptor = Acceptor::adopt(listener).context("cannot use the workers' socket")?;
        (acceptor, Some(Notifier::inherited(WORKER_READY_FD)?))
    } else {
        let acceptor = match systemd::inherited_listener()? {
            Some(listener) => {
                Acceptor::adopt(listener).context("cannot use the socket passed by systemd")?
            }
            None => Acceptor::bind(config.listen)
                .with_context(|| format!("cannot listen on {}", config.listen))?,
        };
        (acceptor, Notifier::from_env())
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
    acceptor.register(poller.as_mut())?;
    let token = EventToken::Signals.to_token();
    poller.register(signals.fd(), token, Interest::READABLE)?;
    Ok(Parts {
        poller,
        acceptor,
        signals,
        log,
        clock,
        supervision,
        cgi,
        notifier,
    })
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

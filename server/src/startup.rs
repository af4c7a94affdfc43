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
    listener::raise_descriptor_limit();
    orphans::become_subreaper();
    let mut poller = new_poller(config.backend)
        .with_context(|| format!("cannot create the {} poller", config.backend.name()))?;
    let acceptor = match systemd::inherited_listener()? {
        Some(listener) => {
            Acceptor::adopt(listener).context("cannot use the socket passed by systemd")?
        }
        None => Acceptor::bind(config.listen, config.worker)
            .with_context(|| format!("cannot listen on {}", config.listen))?,
    };
    let notifier = systemd::Notifier::from_env();
    let signals = Signals::install().context("cannot install signal handlers")?;
    let log = AccessLog::open(&config.access_log, config.access_log_format)
        .context("cannot open the access log")?;
    open_error_log(config)?;
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

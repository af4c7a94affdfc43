//! Start-up, in the order it must happen: the process's own settings
//! (descriptor limit, subreaper), the poller, the listening socket (bound,
//! or passed by systemd) and systemd's notification socket, the
//! signal handlers and the access log (all while still privileged), then
//! `--user`, then the children, whose handshakes are waited for; only
//! then do the listener and the signals join the poller.

use anyhow::{Context, Result};

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
        None => Acceptor::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?,
    };
    let notifier = systemd::Notifier::from_env();
    let signals = Signals::install().context("cannot install signal handlers")?;
    let log = AccessLog::open(&config.access_log).context("cannot open the access log")?;
    if let Some(user) = &config.user {
        privileges::drop_to(user)?;
    }
    let clock = Clock::new();
    let mut supervision = Supervision::new(config, clock.now());
    let mut cgi = Cgi::new(config, clock.now());
    supervision.start(cgi.runner(), poller.as_mut())?;
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

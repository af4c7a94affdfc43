//! Readiness notification behind one interface, with three backends side
//! by side: `select`, `poll` and `epoll`. The server's loop only ever talks
//! to a `Box<dyn Poller>`.
//!
//! All backends are level-triggered: a descriptor that stays readable is
//! reported again on every `wait` until it is drained or its interest
//! changes.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub mod epoll;
pub mod poll;
pub mod select;

/// Identifies a registered descriptor to the caller.
pub type Token = usize;

/// What the caller wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };
    /// Registered but silent (for example a connection waiting on a helper).
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
}

/// One readiness report. Errors and hang-ups are reported as readable
/// (and writable, when write interest was set) so that the next read or
/// write finds out what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
}

/// The three backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Select,
    Poll,
    Epoll,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
        }
    }
}

/// A readiness multiplexer.
pub trait Poller {
    /// Starts watching `fd`. Under select, a descriptor at or above
    /// FD_SETSIZE is refused with an error (never a panic).
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Changes what `fd` is watched for.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`. Must be called before `fd` is closed.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Waits until something is ready or `timeout` passes (`None`: no
    /// limit), replacing the contents of `events`. An interrupted wait
    /// (EINTR) returns `Ok` with no events.
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
    /// The highest descriptor number this backend can watch plus one, if
    /// it has such a limit (select: FD_SETSIZE).
    fn fd_limit(&self) -> Option<RawFd>;
    fn backend(&self) -> Backend;
}

/// Creates a poller of the chosen kind.
pub fn new_poller(backend: Backend) -> io::Result<Box<dyn Poller>> {
    Ok(match backend {
        Backend::Select => Box::new(select::SelectPoller::new()),
        Backend::Poll => Box::new(poll::PollPoller::new()),
        Backend::Epoll => Box::new(epoll::EpollPoller::new()?),
    })
}

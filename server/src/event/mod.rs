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

#[cfg(test)]
mod conformance;
pub(crate) mod epoll;
pub(crate) mod poll;
pub(crate) mod select;

/// Identifies a registered descriptor to the caller.
pub(crate) type Token = usize;

/// What the caller wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl Interest {
    pub(crate) const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub(crate) const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    pub(crate) const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };
    /// Registered but silent (for example a connection waiting on a helper).
    pub(crate) const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
}

/// One readiness report. Errors and hang-ups are reported as readable
/// (and writable, when write interest was set) so that the next read or
/// write finds out what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) token: Token,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
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
pub(crate) trait Poller {
    /// Starts watching `fd`. Under select, a descriptor at or above
    /// FD_SETSIZE is refused with an error (never a panic).
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Changes what `fd` is watched for.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`. Must be called before `fd` is closed.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Stops watching `fd`, which the caller is about to close and holds
    /// no other descriptor of (a client socket). Backends whose kernel
    /// registration goes away with the last close (epoll) skip the system
    /// call.
    fn forget_closing(&mut self, fd: RawFd) -> io::Result<()> {
        self.deregister(fd)
    }
    /// Waits until something is ready or `timeout` passes (`None`: no
    /// limit), replacing the contents of `events`. An interrupted wait
    /// (EINTR) returns `Ok` with no events.
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
    /// The highest descriptor number this backend can watch plus one, if
    /// it has such a limit (select: FD_SETSIZE).
    fn fd_limit(&self) -> Option<RawFd>;
    /// Which backend this is (the conformance tests check it).
    #[cfg(test)]
    fn backend(&self) -> Backend;
}

/// Creates a poller of the chosen kind.
pub(crate) fn new_poller(backend: Backend) -> io::Result<Box<dyn Poller>> {
    Ok(match backend {
        Backend::Select => Box::new(select::SelectPoller::new()),
        Backend::Poll => Box::new(poll::PollPoller::new()),
        Backend::Epoll => Box::new(epoll::EpollPoller::new()?),
    })
}

/// Converts a wait timeout into the milliseconds `poll` and `epoll_wait`
/// take (and `select`, through a `timeval`): `None` is -1 (no limit),
/// anything with a fraction of a millisecond is rounded up (so a timer due
/// in 0.3 ms sleeps 1 ms instead of spinning on a zero timeout), and very
/// long waits are capped at `c_int::MAX` milliseconds (about 24 days).
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// The number of descriptors a wait system call reported ready, from its
/// return value: an interrupted wait (EINTR) counts as none ready, any
/// other failure is the error.
fn ready_count(rc: libc::c_int) -> io::Result<usize> {
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(err)
    }
}

/// Builds the [`Event`] for what the kernel reported. Hang-ups and errors
/// (`trouble`) count as readable, and as writable when write interest is
/// set, so that the next read or write finds out; this needs the
/// interest, which the kernel does not echo back (a pipe whose reader has
/// gone reports an error without "writable").
fn readiness(
    token: Token,
    interest: Interest,
    readable: bool,
    writable: bool,
    trouble: bool,
) -> Event {
    Event {
        token,
        readable: readable || trouble,
        writable: writable || (trouble && interest.writable),
    }
}

/// `fd` cannot be a descriptor (it is negative).
fn invalid_fd(backend: Backend, fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: invalid descriptor {fd}", backend.name()),
    )
}

/// `fd` was not registered with this poller.
fn not_registered(backend: Backend, fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: descriptor {fd} is not registered", backend.name()),
    )
}

/// `fd` is registered already.
fn already_registered(backend: Backend, fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}: descriptor {fd} is already registered", backend.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(7))), 7);
        assert_eq!(timeout_ms(Some(Duration::from_micros(7_001))), 8);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
    }
}

//! The `epoll(7)` backend (Linux): level-triggered, one kernel interest
//! list, and a reused 1024-entry buffer so that waiting allocates nothing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{
    already_registered, invalid_fd, not_registered, readiness, ready_count, timeout_ms, Backend,
    Event, Interest, Poller, Token,
};

/// How many events one `wait` can return; the rest wait for the next
/// call (level-triggered, so nothing is lost).
const MAX_EVENTS: usize = 1024;

fn epoll_events(interest: Interest) -> u32 {
    let mut events = 0;
    if interest.readable {
        events |= libc::EPOLLIN as u32;
    }
    if interest.writable {
        events |= libc::EPOLLOUT as u32;
    }
    events
}

/// Turns the kernel's flags into an [`Event`]. Hang-ups and errors count
/// as readable (and writable when write interest is set): see
/// [`readiness`] (a pipe whose reader has gone reports EPOLLERR without
/// EPOLLOUT).
fn to_event(token: Token, interest: Interest, flags: u32) -> Event {
    readiness(
        token,
        interest,
        flags & libc::EPOLLIN as u32 != 0,
        flags & libc::EPOLLOUT as u32 != 0,
        flags & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
    )
}

/// Level-triggered poller built on `epoll(7)`.
///
/// The event data holds the descriptor number rather than the token: the
/// token and interest are looked up in `regs`, because mapping an error to
/// "writable" depends on the interest, which the kernel does not report.
pub(crate) struct EpollPoller {
    epfd: OwnedFd,
    /// Reused by every `wait`; never resized (`MAX_EVENTS` long except
    /// in tests).
    buf: Vec<libc::epoll_event>,
    /// Indexed by descriptor.
    regs: Vec<Option<(Token, Interest)>>,
}

impl std::fmt::Debug for EpollPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollPoller")
            .field("epfd", &self.epfd)
            .field("registered", &self.regs.iter().flatten().count())
            .finish()
    }
}

impl EpollPoller {
    pub(crate) fn new() -> io::Result<Self> {
        Self::with_capacity(MAX_EVENTS)
    }

    /// A poller whose `wait` returns at most `max_events` events.
    fn with_capacity(max_events: usize) -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EpollPoller {
            epfd,
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.clamp(1, MAX_EVENTS)],
            regs: Vec::new(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: Interest) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: epoll_events(interest),
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid event for the duration of the call
        // (ignored by EPOLL_CTL_DEL).
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The table index of a registered `fd`.
    fn registered(&self, fd: RawFd) -> io::Result<usize> {
        match usize::try_from(fd) {
            Ok(i) if matches!(self.regs.get(i), Some(Some(_))) => Ok(i),
            _ => Err(not_registered(Backend::Epoll, fd)),
        }
    }
}

impl Poller for EpollPoller {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = usize::try_from(fd).map_err(|_| invalid_fd(Backend::Epoll, fd))?;
        if matches!(self.regs.get(i), Some(Some(_))) {
            return Err(already_registered(Backend::Epoll, fd));
        }
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest)?;
        if i >= self.regs.len() {
            self.regs.resize(i + 1, None);
        }
        self.regs[i] = Some((token, interest));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.registered(fd)?;
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest)?;
        self.regs[i] = Some((token, interest));
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.registered(fd)?;
        // Forget it even if the kernel refuses (say the caller closed it
        // first): the number may be reused by a new descriptor.
        self.regs[i] = None;
        self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE)
    }

    fn forget_closing(&mut self, fd: RawFd) -> io::Result<()> {
        // Closing the last descriptor of the socket removes it from the
        // epoll set; only the table entry needs to go.
        let i = self.registered(fd)?;
        self.regs[i] = None;
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // SAFETY: `buf` holds `buf.len()` (at most MAX_EVENTS)
        // initialised entries for the kernel to overwrite.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.len() as libc::c_int,
                timeout_ms(timeout),
            )
        };
        let n = ready_count(n)?;
        for ev in &self.buf[..n] {
            // Copy out of the (packed) struct before use.
            let (flags, data) = (ev.events, ev.u64);
            let entry = usize::try_from(data)
                .ok()
                .and_then(|fd| self.regs.get(fd).copied().flatten());
            if let Some((token, interest)) = entry {
                events.push(to_event(token, interest, flags));
            }
        }
        Ok(())
    }

    fn fd_limit(&self) -> Option<RawFd> {
        None
    }

    #[cfg(test)]
    fn backend(&self) -> Backend {
        Backend::Epoll
    }
}

#[cfg(test)]
mod tests {
    //! Epoll-only tests; what every backend must do is in `conformance`.

    use super::*;
    use crate::event::conformance::{socketpair, wait, LONG};

    #[test]
    fn regular_files_are_refused() {
        let mut p = EpollPoller::new().unwrap();
        // A regular file cannot be watched by epoll: refused, not recorded.
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(p.register(file.as_raw_fd(), 3, Interest::READABLE).is_err());
        assert!(p.deregister(file.as_raw_fd()).is_err());
    }

    #[test]
    fn more_ready_than_the_buffer_holds() {
        let pairs: Vec<_> = (0..3).map(|_| socketpair()).collect();
        let mut p = EpollPoller::with_capacity(4).unwrap();
        for (i, (a, b)) in pairs.iter().enumerate() {
            p.register(a.as_raw_fd(), 2 * i, Interest::WRITABLE)
                .unwrap();
            p.register(b.as_raw_fd(), 2 * i + 1, Interest::WRITABLE)
                .unwrap();
        }
        // Six ready, four reported per wait; level-triggered, so the
        // other two come out next time (epoll rotates its ready list).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2 {
            let events = wait(&mut p, LONG);
            assert_eq!(events.len(), 4);
            seen.extend(events.iter().map(|e| e.token));
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(EpollPoller::new().unwrap().buf.len(), MAX_EVENTS);
        for (a, b) in &pairs {
            p.deregister(a.as_raw_fd()).unwrap();
            p.deregister(b.as_raw_fd()).unwrap();
        }
    }
}

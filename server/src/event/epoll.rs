//! The `epoll(7)` backend (Linux): level-triggered, one kernel interest
//! list, and a reused 1024-entry buffer so that waiting allocates nothing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::poll::timeout_ms;
use super::{Backend, Event, Interest, Poller, Token};

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
/// as readable (and writable when write interest is set) so that the next
/// read or write finds out; this needs the interest, which the kernel does
/// not echo back (a pipe whose reader has gone reports EPOLLERR without
/// EPOLLOUT).
fn to_event(token: Token, interest: Interest, flags: u32) -> Event {
    let trouble = flags & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
    Event {
        token,
        readable: flags & libc::EPOLLIN as u32 != 0 || trouble,
        writable: flags & libc::EPOLLOUT as u32 != 0 || (trouble && interest.writable),
    }
}

/// Level-triggered poller built on `epoll(7)`.
///
/// The event data holds the descriptor number rather than the token: the
/// token and interest are looked up in `regs`, because mapping an error to
/// "writable" depends on the interest, which the kernel does not report.
pub struct EpollPoller {
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
    pub fn new() -> io::Result<Self> {
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
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("epoll: descriptor {fd} is not registered"),
            )),
        }
    }
}

impl Poller for EpollPoller {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = usize::try_from(fd).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("epoll: invalid descriptor {fd}"),
            )
        })?;
        if matches!(self.regs.get(i), Some(Some(_))) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("epoll: descriptor {fd} is already registered"),
            ));
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
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        for ev in &self.buf[..n as usize] {
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

    fn backend(&self) -> Backend {
        Backend::Epoll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const LONG: Option<Duration> = Some(Duration::from_secs(5));
    const SHORT: Option<Duration> = Some(Duration::from_millis(20));

    fn socketpair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both descriptors are fresh and owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
        // SAFETY: both descriptors are fresh and owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd, bytes: &[u8]) {
        // SAFETY: `bytes` is a valid buffer of the given length.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    }

    fn wait(p: &mut EpollPoller, timeout: Option<Duration>) -> Vec<Event> {
        let mut events = Vec::with_capacity(16);
        p.wait(&mut events, timeout).expect("wait");
        events
    }

    fn ev(token: Token, readable: bool, writable: bool) -> Event {
        Event {
            token,
            readable,
            writable,
        }
    }

    #[test]
    fn readable_after_write_and_level_triggered() {
        let (a, b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        p.register(a.as_raw_fd(), 7, Interest::READABLE).unwrap();
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
        write(&b, b"x");
        assert_eq!(wait(&mut p, LONG), vec![ev(7, true, false)]);
        // Not drained: reported again.
        assert_eq!(wait(&mut p, LONG), vec![ev(7, true, false)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn writable_on_fresh_socket() {
        let (a, _b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        p.register(a.as_raw_fd(), usize::MAX, Interest::WRITABLE)
            .unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(usize::MAX, false, true)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn reregister_readable_to_writable() {
        let (a, b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
        write(&b, b"x");
        p.reregister(a.as_raw_fd(), 2, Interest::WRITABLE).unwrap();
        // Data is pending but only write interest is left.
        assert_eq!(wait(&mut p, LONG), vec![ev(2, false, true)]);
        p.reregister(a.as_raw_fd(), 3, Interest::BOTH).unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(3, true, true)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn none_interest_is_silent() {
        let (a, b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        write(&b, b"x");
        p.register(a.as_raw_fd(), 1, Interest::NONE).unwrap();
        assert!(wait(&mut p, SHORT).is_empty());
        p.reregister(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn deregister_stops_events() {
        let (a, b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        write(&b, b"x");
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert_eq!(wait(&mut p, LONG).len(), 1);
        p.deregister(a.as_raw_fd()).unwrap();
        assert!(wait(&mut p, SHORT).is_empty());
        assert!(p.deregister(a.as_raw_fd()).is_err());
        assert!(p.reregister(a.as_raw_fd(), 1, Interest::READABLE).is_err());
    }

    #[test]
    fn hangup_is_readable() {
        let (a, b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        drop(b);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn pipe_hangups() {
        let (r, w) = pipe();
        let mut p = EpollPoller::new().unwrap();
        p.register(r.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
        drop(w);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(r.as_raw_fd()).unwrap();

        // A write end whose reader is gone reports EPOLLERR only: it must
        // still come out writable.
        let (r, w) = pipe();
        p.register(w.as_raw_fd(), 2, Interest::WRITABLE).unwrap();
        drop(r);
        assert_eq!(wait(&mut p, LONG), vec![ev(2, true, true)]);
        p.deregister(w.as_raw_fd()).unwrap();
    }

    #[test]
    fn timeout_returns_no_events() {
        let (a, _b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        let mut events = vec![ev(99, true, true)];
        let start = Instant::now();
        p.wait(&mut events, Some(Duration::from_millis(30)))
            .unwrap();
        assert!(events.is_empty());
        assert!(start.elapsed() >= Duration::from_millis(25));
        // Sub-millisecond timeouts still sleep instead of spinning.
        let start = Instant::now();
        p.wait(&mut events, Some(Duration::from_micros(300)))
            .unwrap();
        assert!(events.is_empty());
        assert!(start.elapsed() >= Duration::from_micros(300));
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn bad_registrations_are_errors() {
        let (a, _b) = socketpair();
        let mut p = EpollPoller::new().unwrap();
        assert!(p.register(-1, 1, Interest::READABLE).is_err());
        assert!(p.deregister(-1).is_err());
        assert!(p.deregister(a.as_raw_fd()).is_err());
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(p.register(a.as_raw_fd(), 2, Interest::READABLE).is_err());
        p.deregister(a.as_raw_fd()).unwrap();
        // A regular file cannot be watched by epoll: refused, not recorded.
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(p.register(file.as_raw_fd(), 3, Interest::READABLE).is_err());
        assert!(p.deregister(file.as_raw_fd()).is_err());
        assert_eq!(p.fd_limit(), None);
        assert_eq!(p.backend(), Backend::Epoll);
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

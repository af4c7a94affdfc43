//! The `select(2)` backend: master read/write `fd_set`s kept in step with
//! an fd-indexed registration table and copied for each wait. Descriptors
//! at or above FD_SETSIZE (1024) are refused with an error, never a panic.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::poll::timeout_ms;
use super::{Backend, Event, Interest, Poller, Token};

/// select cannot watch a descriptor at or above this.
const FD_SETSIZE: usize = libc::FD_SETSIZE;

fn empty_set() -> libc::fd_set {
    // SAFETY: `fd_set` is a plain bit array, for which all-zero is valid;
    // FD_ZERO then clears it the official way.
    unsafe {
        let mut set: libc::fd_set = std::mem::zeroed();
        libc::FD_ZERO(&mut set);
        set
    }
}

/// Level-triggered poller built on `select(2)`.
pub struct SelectPoller {
    /// Indexed by descriptor; always `FD_SETSIZE` long.
    regs: Vec<Option<(Token, Interest)>>,
    /// Master sets, matching `regs`.
    read_set: libc::fd_set,
    write_set: libc::fd_set,
    /// Highest registered descriptor, or -1.
    max_fd: RawFd,
}

impl std::fmt::Debug for SelectPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectPoller")
            .field("registered", &self.regs.iter().flatten().count())
            .field("max_fd", &self.max_fd)
            .finish()
    }
}

impl Default for SelectPoller {
    fn default() -> Self {
        Self::new()
    }
}

impl SelectPoller {
    pub fn new() -> Self {
        SelectPoller {
            regs: vec![None; FD_SETSIZE],
            read_set: empty_set(),
            write_set: empty_set(),
            max_fd: -1,
        }
    }

    /// Checks that `fd` fits in an `fd_set`, returning it as an index.
    fn check(fd: RawFd) -> io::Result<usize> {
        match usize::try_from(fd) {
            Ok(i) if i < FD_SETSIZE => Ok(i),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "select: descriptor {fd} is at or above FD_SETSIZE ({FD_SETSIZE}); \
                     use the poll or epoll backend for more connections"
                ),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("select: invalid descriptor {fd}"),
            )),
        }
    }

    fn not_registered(fd: RawFd) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("select: descriptor {fd} is not registered"),
        )
    }

    /// Records `interest` for `fd` (already checked) in the master sets.
    fn set_interest(&mut self, fd: RawFd, interest: Interest) {
        // SAFETY: `fd` passed `check`, so 0 <= fd < FD_SETSIZE.
        unsafe {
            if interest.readable {
                libc::FD_SET(fd, &mut self.read_set);
            } else {
                libc::FD_CLR(fd, &mut self.read_set);
            }
            if interest.writable {
                libc::FD_SET(fd, &mut self.write_set);
            } else {
                libc::FD_CLR(fd, &mut self.write_set);
            }
        }
    }
}

impl Poller for SelectPoller {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = Self::check(fd)?;
        if self.regs[i].is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("select: descriptor {fd} is already registered"),
            ));
        }
        self.regs[i] = Some((token, interest));
        self.set_interest(fd, interest);
        self.max_fd = self.max_fd.max(fd);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = Self::check(fd)?;
        match &mut self.regs[i] {
            Some(entry) => *entry = (token, interest),
            None => return Err(Self::not_registered(fd)),
        }
        self.set_interest(fd, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = Self::check(fd).map_err(|_| Self::not_registered(fd))?;
        if self.regs[i].take().is_none() {
            return Err(Self::not_registered(fd));
        }
        self.set_interest(fd, Interest::NONE);
        if fd == self.max_fd {
            self.max_fd = self.regs[..i]
                .iter()
                .rposition(Option::is_some)
                .map_or(-1, |j| j as RawFd);
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // select overwrites its arguments: hand it copies.
        let mut read_set = self.read_set;
        let mut write_set = self.write_set;
        let mut tv;
        let tv_ptr = match timeout {
            None => std::ptr::null_mut(),
            Some(_) => {
                // Same millisecond rounding as poll and epoll.
                let ms = timeout_ms(timeout);
                tv = libc::timeval {
                    tv_sec: (ms / 1000) as libc::time_t,
                    tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
                };
                &mut tv as *mut libc::timeval
            }
        };
        // SAFETY: the sets and timeval are valid for the call, and every
        // descriptor in the sets is below FD_SETSIZE.
        let n = unsafe {
            libc::select(
                self.max_fd + 1,
                &mut read_set,
                &mut write_set,
                std::ptr::null_mut(),
                tv_ptr,
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
        // `n` counts set bits across both sets; stop once all are seen.
        let mut left = n as usize;
        let limit = usize::try_from(self.max_fd + 1).unwrap_or(0);
        for (fd, reg) in self.regs[..limit].iter().enumerate() {
            if left == 0 {
                break;
            }
            let Some((token, interest)) = *reg else {
                continue;
            };
            let fd = fd as RawFd;
            // SAFETY: fd < FD_SETSIZE, and the sets are initialised.
            let (readable, writable) = unsafe {
                (
                    interest.readable && libc::FD_ISSET(fd, &read_set),
                    interest.writable && libc::FD_ISSET(fd, &write_set),
                )
            };
            if readable || writable {
                left = left.saturating_sub(usize::from(readable) + usize::from(writable));
                events.push(Event {
                    token,
                    readable,
                    writable,
                });
            }
        }
        Ok(())
    }

    fn fd_limit(&self) -> Option<RawFd> {
        Some(FD_SETSIZE as RawFd)
    }

    fn backend(&self) -> Backend {
        Backend::Select
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

    fn wait(p: &mut SelectPoller, timeout: Option<Duration>) -> Vec<Event> {
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

    /// Duplicates `fd` onto a descriptor at or above `min`, raising the
    /// soft RLIMIT_NOFILE first if it is too low.
    fn dup_high(fd: RawFd, min: RawFd) -> OwnedFd {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid rlimit to fill in / pass.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
            let want = (min as libc::rlim_t) + 64;
            if lim.rlim_cur < want && want <= lim.rlim_max {
                lim.rlim_cur = want;
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
            }
        }
        // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor or -1.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
        assert!(high >= min, "fcntl: {}", io::Error::last_os_error());
        // SAFETY: `high` is fresh and owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(high) }
    }

    #[test]
    fn readable_after_write_and_level_triggered() {
        let (a, b) = socketpair();
        let mut p = SelectPoller::new();
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
        let mut p = SelectPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::WRITABLE).unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(1, false, true)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn reregister_readable_to_writable() {
        let (a, b) = socketpair();
        let mut p = SelectPoller::new();
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
        let mut p = SelectPoller::new();
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
        let mut p = SelectPoller::new();
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
        let mut p = SelectPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        drop(b);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn pipe_hangups() {
        let (r, w) = pipe();
        let mut p = SelectPoller::new();
        p.register(r.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
        drop(w);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(r.as_raw_fd()).unwrap();

        // A write end whose reader is gone is writable (the write fails).
        let (r, w) = pipe();
        p.register(w.as_raw_fd(), 2, Interest::WRITABLE).unwrap();
        drop(r);
        assert_eq!(wait(&mut p, LONG), vec![ev(2, false, true)]);
        p.deregister(w.as_raw_fd()).unwrap();
    }

    #[test]
    fn timeout_returns_no_events() {
        let (a, _b) = socketpair();
        let mut p = SelectPoller::new();
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
    fn descriptors_past_fd_setsize_are_refused() {
        let (a, _b) = socketpair();
        let mut p = SelectPoller::new();
        assert_eq!(p.fd_limit(), Some(1024));
        assert_eq!(p.backend(), Backend::Select);

        let high = dup_high(a.as_raw_fd(), 1100);
        let err = p
            .register(high.as_raw_fd(), 1, Interest::READABLE)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(p
            .reregister(high.as_raw_fd(), 1, Interest::WRITABLE)
            .is_err());
        assert!(p.deregister(high.as_raw_fd()).is_err());

        // 1024 itself is already too big.
        assert!(p.register(1024, 1, Interest::READABLE).is_err());
        assert!(p.register(-1, 1, Interest::READABLE).is_err());
        assert!(p.deregister(-1).is_err());
        assert_eq!(p.max_fd, -1);
        // Nothing was recorded, so waiting is quiet.
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
    }

    #[test]
    fn double_register_is_an_error() {
        let (a, _b) = socketpair();
        let mut p = SelectPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(p.register(a.as_raw_fd(), 2, Interest::READABLE).is_err());
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn many_descriptors_and_max_fd_tracking() {
        // Several hundred descriptors, as a busy server would have; other
        // tests run concurrently, so stay well clear of FD_SETSIZE.
        let pairs: Vec<_> = (0..150).map(|_| socketpair()).collect();
        let mut p = SelectPoller::new();
        for (i, (a, b)) in pairs.iter().enumerate() {
            p.register(a.as_raw_fd(), 2 * i, Interest::READABLE)
                .unwrap();
            p.register(b.as_raw_fd(), 2 * i + 1, Interest::READABLE)
                .unwrap();
        }
        let highest = pairs
            .iter()
            .flat_map(|(a, b)| [a.as_raw_fd(), b.as_raw_fd()])
            .max()
            .unwrap();
        assert_eq!(p.max_fd, highest);

        write(&pairs[3].1, b"x");
        write(&pairs[140].0, b"x");
        let mut events = wait(&mut p, LONG);
        events.sort_by_key(|e| e.token);
        assert_eq!(events, vec![ev(6, true, false), ev(281, true, false)]);

        // Removing the highest descriptor lowers max_fd to the next one.
        p.deregister(highest).unwrap();
        assert!(p.max_fd < highest);
        assert!(p.regs[p.max_fd as usize].is_some());
        for (a, b) in &pairs {
            for fd in [a.as_raw_fd(), b.as_raw_fd()] {
                if fd != highest {
                    p.deregister(fd).unwrap();
                }
            }
        }
        assert_eq!(p.max_fd, -1);
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
    }
}

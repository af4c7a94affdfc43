//! The `poll(2)` backend: one `pollfd` array handed to the kernel on every
//! wait, with an fd-indexed table so that registering, changing and
//! removing a descriptor are all O(1). No descriptor-number limit.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Backend, Event, Interest, Poller, Token};

/// Marks a descriptor that has no slot in `pollfds`.
const VACANT: usize = usize::MAX;

/// Converts a wait timeout into the milliseconds `poll` and `epoll_wait`
/// take: `None` is -1 (no limit), anything with a fraction of a
/// millisecond is rounded up (so a timer due in 0.3 ms sleeps 1 ms
/// instead of spinning on a zero timeout), and very long waits are capped
/// at `c_int::MAX` milliseconds (about 24 days).
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// Turns `revents` into an [`Event`], or `None` when nothing happened.
/// Hang-ups, errors and POLLNVAL count as readable (and writable when
/// write interest is set) so that the next read or write finds out.
fn to_event(token: Token, interest: Interest, revents: libc::c_short) -> Option<Event> {
    if revents == 0 {
        return None;
    }
    let trouble = revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    Some(Event {
        token,
        readable: revents & libc::POLLIN != 0 || trouble,
        writable: revents & libc::POLLOUT != 0 || (trouble && interest.writable),
    })
}

fn poll_events(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.readable {
        events |= libc::POLLIN;
    }
    if interest.writable {
        events |= libc::POLLOUT;
    }
    events
}

/// Level-triggered poller built on `poll(2)`.
#[derive(Debug, Default)]
pub struct PollPoller {
    /// What the kernel sees; `entries[i]` belongs to `pollfds[i]`.
    pollfds: Vec<libc::pollfd>,
    entries: Vec<(Token, Interest)>,
    /// Indexed by descriptor: its position in `pollfds`, or `VACANT`.
    index: Vec<usize>,
}

impl PollPoller {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot of a registered `fd`, or `None`.
    fn slot(&self, fd: RawFd) -> Option<usize> {
        let fd = usize::try_from(fd).ok()?;
        match self.index.get(fd) {
            Some(&i) if i != VACANT => Some(i),
            _ => None,
        }
    }
}

fn bad_fd(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("poll: invalid descriptor {fd}"),
    )
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("poll: descriptor {fd} is not registered"),
    )
}

impl Poller for PollPoller {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let idx = usize::try_from(fd).map_err(|_| bad_fd(fd))?;
        if self.slot(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("poll: descriptor {fd} is already registered"),
            ));
        }
        if idx >= self.index.len() {
            self.index.resize(idx + 1, VACANT);
        }
        self.index[idx] = self.pollfds.len();
        self.pollfds.push(libc::pollfd {
            fd,
            events: poll_events(interest),
            revents: 0,
        });
        self.entries.push((token, interest));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.pollfds[i].events = poll_events(interest);
        self.pollfds[i].revents = 0;
        self.entries[i] = (token, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.pollfds.swap_remove(i);
        self.entries.swap_remove(i);
        if let Some(moved) = self.pollfds.get(i) {
            // The last entry now lives at `i`; its fd is registered, so
            // it is non-negative and within `index`.
            self.index[moved.fd as usize] = i;
        }
        self.index[fd as usize] = VACANT;
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // SAFETY: the pointer and length describe our own initialised
        // `pollfd` array, which the kernel only writes `revents` into.
        let n = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
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
        let mut left = n as usize;
        for (pfd, &(token, interest)) in self.pollfds.iter().zip(&self.entries) {
            if left == 0 {
                break;
            }
            if let Some(ev) = to_event(token, interest, pfd.revents) {
                left -= 1;
                events.push(ev);
            }
        }
        Ok(())
    }

    fn fd_limit(&self) -> Option<RawFd> {
        None
    }

    fn backend(&self) -> Backend {
        Backend::Poll
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

    fn wait(p: &mut PollPoller, timeout: Option<Duration>) -> Vec<Event> {
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
    fn timeout_rounds_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(7))), 7);
        assert_eq!(timeout_ms(Some(Duration::from_micros(7_001))), 8);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
    }

    #[test]
    fn readable_after_write_and_level_triggered() {
        let (a, b) = socketpair();
        let mut p = PollPoller::new();
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
        let mut p = PollPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::WRITABLE).unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(1, false, true)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn reregister_readable_to_writable() {
        let (a, b) = socketpair();
        let mut p = PollPoller::new();
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
        let mut p = PollPoller::new();
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
        let mut p = PollPoller::new();
        write(&b, b"x");
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert_eq!(wait(&mut p, LONG).len(), 1);
        p.deregister(a.as_raw_fd()).unwrap();
        assert!(wait(&mut p, SHORT).is_empty());
        assert!(p.deregister(a.as_raw_fd()).is_err());
        assert!(p.reregister(a.as_raw_fd(), 1, Interest::READABLE).is_err());
    }

    #[test]
    fn deregister_keeps_moved_entry_reachable() {
        let pairs: Vec<_> = (0..4).map(|_| socketpair()).collect();
        let mut p = PollPoller::new();
        for (i, (a, _)) in pairs.iter().enumerate() {
            p.register(a.as_raw_fd(), 10 + i, Interest::READABLE)
                .unwrap();
        }
        // Removing the first moves the last into its slot.
        p.deregister(pairs[0].0.as_raw_fd()).unwrap();
        write(&pairs[3].1, b"x");
        assert_eq!(wait(&mut p, LONG), vec![ev(13, true, false)]);
        p.reregister(pairs[3].0.as_raw_fd(), 23, Interest::WRITABLE)
            .unwrap();
        assert_eq!(wait(&mut p, LONG), vec![ev(23, false, true)]);
        p.deregister(pairs[3].0.as_raw_fd()).unwrap();
        p.deregister(pairs[1].0.as_raw_fd()).unwrap();
        p.deregister(pairs[2].0.as_raw_fd()).unwrap();
        assert!(p.pollfds.is_empty());
        assert!(p.index.iter().all(|&i| i == VACANT));
    }

    #[test]
    fn hangup_is_readable() {
        let (a, b) = socketpair();
        let mut p = PollPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        drop(b);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn pipe_hangups() {
        let (r, w) = pipe();
        let mut p = PollPoller::new();
        p.register(r.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(wait(&mut p, Some(Duration::ZERO)).is_empty());
        drop(w);
        assert_eq!(wait(&mut p, LONG), vec![ev(1, true, false)]);
        p.deregister(r.as_raw_fd()).unwrap();

        // A write end whose reader is gone reports POLLERR only: it must
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
        let mut p = PollPoller::new();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        let mut events = vec![ev(99, true, true)];
        let start = Instant::now();
        p.wait(&mut events, Some(Duration::from_millis(30)))
            .unwrap();
        assert!(events.is_empty());
        assert!(start.elapsed() >= Duration::from_millis(25));
        p.deregister(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn bad_registrations_are_errors() {
        let (a, _b) = socketpair();
        let mut p = PollPoller::new();
        assert!(p.register(-1, 1, Interest::READABLE).is_err());
        assert!(p.deregister(-1).is_err());
        assert!(p.deregister(a.as_raw_fd()).is_err());
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        assert!(p.register(a.as_raw_fd(), 2, Interest::READABLE).is_err());
        p.deregister(a.as_raw_fd()).unwrap();
        assert_eq!(p.fd_limit(), None);
        assert_eq!(p.backend(), Backend::Poll);
    }
}

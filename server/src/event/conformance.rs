//! What every backend must do, tested once and run against each of them
//! (through [`new_poller`] and `Box<dyn Poller>`), and the helpers the
//! backends' own tests share. Tests of one backend's peculiarities
//! (select's FD_SETSIZE, poll's slot moves, epoll's small buffer) stay in
//! that backend's file.
//!
//! Each test below is a function of the [`Backend`]; `conformance_tests!`
//! turns it into one `#[test]` per backend, named
//! `event::conformance::<backend>::<test>`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{new_poller, Backend, Event, Interest, Poller, Token};

/// Long enough for anything that should happen at once.
pub(super) const LONG: Option<Duration> = Some(Duration::from_secs(5));
/// Long enough to notice something that should not happen.
pub(super) const SHORT: Option<Duration> = Some(Duration::from_millis(20));

/// A non-blocking, close-on-exec Unix stream socket pair.
pub(super) fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two descriptors.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub(super) fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Writes all of `bytes` in one call.
pub(super) fn write(fd: &OwnedFd, bytes: &[u8]) {
    // SAFETY: `bytes` is a valid buffer of the given length.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize);
}

/// One wait, returning what it reported.
pub(super) fn wait<P: Poller + ?Sized>(p: &mut P, timeout: Option<Duration>) -> Vec<Event> {
    let mut events = Vec::with_capacity(16);
    p.wait(&mut events, timeout).expect("wait");
    events
}

pub(super) fn ev(token: Token, readable: bool, writable: bool) -> Event {
    Event {
        token,
        readable,
        writable,
    }
}

fn poller(backend: Backend) -> Box<dyn Poller> {
    let p = new_poller(backend).expect("new poller");
    assert_eq!(p.backend(), backend);
    p
}

/// One `#[test]` per backend for each test function named.
macro_rules! conformance_tests {
    ($($test:ident),* $(,)?) => {
        mod select {
            $(#[test]
            fn $test() {
                super::$test(super::Backend::Select);
            })*
        }
        mod poll {
            $(#[test]
            fn $test() {
                super::$test(super::Backend::Poll);
            })*
        }
        mod epoll {
            $(#[test]
            fn $test() {
                super::$test(super::Backend::Epoll);
            })*
        }
    };
}

conformance_tests!(
    readable_after_write_and_level_triggered,
    writable_on_fresh_socket,
    reregister_readable_to_writable,
    none_interest_is_silent,
    deregister_stops_events,
    forgotten_descriptors_can_be_closed_and_reused,
    hangup_is_readable,
    pipe_hangups,
    timeout_returns_no_events,
    bad_registrations_are_errors,
);

fn readable_after_write_and_level_triggered(backend: Backend) {
    let (a, b) = socketpair();
    let mut p = poller(backend);
    p.register(a.as_raw_fd(), 7, Interest::READABLE).unwrap();
    assert!(wait(&mut *p, Some(Duration::ZERO)).is_empty());
    write(&b, b"x");
    assert_eq!(wait(&mut *p, LONG), vec![ev(7, true, false)]);
    // Not drained: reported again.
    assert_eq!(wait(&mut *p, LONG), vec![ev(7, true, false)]);
    p.deregister(a.as_raw_fd()).unwrap();
}

fn writable_on_fresh_socket(backend: Backend) {
    // Any token comes back as given, the largest too.
    for token in [1, usize::MAX] {
        let (a, _b) = socketpair();
        let mut p = poller(backend);
        p.register(a.as_raw_fd(), token, Interest::WRITABLE)
            .unwrap();
        assert_eq!(wait(&mut *p, LONG), vec![ev(token, false, true)]);
        p.deregister(a.as_raw_fd()).unwrap();
    }
}

fn reregister_readable_to_writable(backend: Backend) {
    let (a, b) = socketpair();
    let mut p = poller(backend);
    p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    assert!(wait(&mut *p, Some(Duration::ZERO)).is_empty());
    write(&b, b"x");
    p.reregister(a.as_raw_fd(), 2, Interest::WRITABLE).unwrap();
    // Data is pending but only write interest is left.
    assert_eq!(wait(&mut *p, LONG), vec![ev(2, false, true)]);
    p.reregister(a.as_raw_fd(), 3, Interest::BOTH).unwrap();
    assert_eq!(wait(&mut *p, LONG), vec![ev(3, true, true)]);
    p.deregister(a.as_raw_fd()).unwrap();
}

fn none_interest_is_silent(backend: Backend) {
    let (a, b) = socketpair();
    let mut p = poller(backend);
    write(&b, b"x");
    p.register(a.as_raw_fd(), 1, Interest::NONE).unwrap();
    assert!(wait(&mut *p, SHORT).is_empty());
    p.reregister(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    assert_eq!(wait(&mut *p, LONG), vec![ev(1, true, false)]);
    p.deregister(a.as_raw_fd()).unwrap();
}

fn deregister_stops_events(backend: Backend) {
    let (a, b) = socketpair();
    let mut p = poller(backend);
    write(&b, b"x");
    p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    assert_eq!(wait(&mut *p, LONG).len(), 1);
    p.deregister(a.as_raw_fd()).unwrap();
    assert!(wait(&mut *p, SHORT).is_empty());
    assert!(p.deregister(a.as_raw_fd()).is_err());
    assert!(p.reregister(a.as_raw_fd(), 1, Interest::READABLE).is_err());
}

fn forgotten_descriptors_can_be_closed_and_reused(backend: Backend) {
    // Forgotten, then closed: the poller no longer looks at the number.
    let (a, b) = socketpair();
    let mut p = poller(backend);
    p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    let number = a.as_raw_fd();
    p.forget_closing(number).unwrap();
    drop(a);
    drop(b);
    assert!(wait(&mut *p, SHORT).is_empty());
    assert!(p.deregister(number).is_err(), "forgotten");

    // Forgotten, then the same number taken by another socket: it
    // registers afresh. dup2 puts the new socket at exactly that number
    // (closing the old one in the same step), so the reuse is certain,
    // not left to which number the kernel (and other test threads) pick.
    let (e, f) = socketpair();
    p.register(e.as_raw_fd(), 3, Interest::READABLE).unwrap();
    let reused = e.as_raw_fd();
    p.forget_closing(reused).unwrap();
    let (c, d) = socketpair();
    // SAFETY: both descriptors are open and ours; `reused` stays owned by
    // `e`, which now refers to c's socket.
    let rc = unsafe { libc::dup2(c.as_raw_fd(), reused) };
    assert_eq!(rc, reused, "dup2: {}", io::Error::last_os_error());
    drop(c);
    drop(f);
    write(&d, b"x");
    p.register(reused, 2, Interest::READABLE).unwrap();
    assert_eq!(wait(&mut *p, LONG), vec![ev(2, true, false)]);
    p.forget_closing(reused).unwrap();
    drop(e);
}

fn hangup_is_readable(backend: Backend) {
    let (a, b) = socketpair();
    let mut p = poller(backend);
    p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    drop(b);
    assert_eq!(wait(&mut *p, LONG), vec![ev(1, true, false)]);
    p.deregister(a.as_raw_fd()).unwrap();
}

fn pipe_hangups(backend: Backend) {
    let (r, w) = pipe();
    let mut p = poller(backend);
    p.register(r.as_raw_fd(), 1, Interest::READABLE).unwrap();
    assert!(wait(&mut *p, Some(Duration::ZERO)).is_empty());
    drop(w);
    assert_eq!(wait(&mut *p, LONG), vec![ev(1, true, false)]);
    p.deregister(r.as_raw_fd()).unwrap();

    // A write end whose reader is gone must come out writable (the write
    // then fails). select reports just that; poll and epoll report only
    // POLLERR/EPOLLERR, which counts as readable too.
    let (r, w) = pipe();
    p.register(w.as_raw_fd(), 2, Interest::WRITABLE).unwrap();
    drop(r);
    let expected = match backend {
        Backend::Select => ev(2, false, true),
        Backend::Poll | Backend::Epoll => ev(2, true, true),
    };
    assert_eq!(wait(&mut *p, LONG), vec![expected]);
    p.deregister(w.as_raw_fd()).unwrap();
}

fn timeout_returns_no_events(backend: Backend) {
    let (a, _b) = socketpair();
    let mut p = poller(backend);
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

fn bad_registrations_are_errors(backend: Backend) {
    let (a, _b) = socketpair();
    let mut p = poller(backend);
    assert!(p.register(-1, 1, Interest::READABLE).is_err());
    assert!(p.deregister(-1).is_err());
    assert!(p.deregister(a.as_raw_fd()).is_err());
    p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
    assert!(p.register(a.as_raw_fd(), 2, Interest::READABLE).is_err());
    p.deregister(a.as_raw_fd()).unwrap();
    let limit = match backend {
        Backend::Select => Some(libc::FD_SETSIZE as i32),
        Backend::Poll | Backend::Epoll => None,
    };
    assert_eq!(p.fd_limit(), limit);
    assert_eq!(p.backend(), backend);
}

//! The `select(2)` backend: master read/write `fd_set`s kept in step with
//! an fd-indexed registration table and copied for each wait. Descriptors
//! at or above FD_SETSIZE (1024) are refused with an error, never a panic.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{
    already_registered, invalid_fd, not_registered, ready_count, timeout_ms, Backend, Event,
    Interest, Poller, Token,
};

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
pub(crate) struct SelectPoller {
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
    pub(crate) fn new() -> Self {
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
            Err(_) => Err(invalid_fd(Backend::Select, fd)),
        }
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
            return Err(already_registered(Backend::Select, fd));
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
            None => return Err(not_registered(Backend::Select, fd)),
        }
        self.set_interest(fd, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = Self::check(fd).map_err(|_| not_registered(Backend::Select, fd))?;
        if self.regs[i].take().is_none() {
            return Err(not_registered(Backend::Select, fd));
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
        // `n` counts set bits across both sets; stop once all are seen
        // (none after an interrupted wait, whose sets are not looked at).
        let mut left = ready_count(n)?;
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

    #[cfg(test)]
    fn backend(&self) -> Backend {
        Backend::Select
    }
}

#[cfg(test)]
mod tests {
    //! Select-only tests; what every backend must do is in `conformance`.

    use super::*;
    use crate::event::conformance::{ev, socketpair, wait, write, LONG};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

//! The `poll(2)` backend: one `pollfd` array handed to the kernel on every
//! wait, with an fd-indexed table so that registering, changing and
//! removing a descriptor are all O(1). No descriptor-number limit.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{
    already_registered, invalid_fd, not_registered, readiness, ready_count, timeout_ms, Backend,
    Event, Interest, Poller, Token,
};

/// Marks a descriptor that has no slot in `pollfds`.
const VACANT: usize = usize::MAX;

/// Turns `revents` into an [`Event`], or `None` when nothing happened.
/// Hang-ups, errors and POLLNVAL count as readable (and writable when
/// write interest is set) so that the next read or write finds out.
fn to_event(token: Token, interest: Interest, revents: libc::c_short) -> Option<Event> {
    if revents == 0 {
        return None;
    }
    Some(readiness(
        token,
        interest,
        revents & libc::POLLIN != 0,
        revents & libc::POLLOUT != 0,
        revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
    ))
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
pub(crate) struct PollPoller {
    /// What the kernel sees; `entries[i]` belongs to `pollfds[i]`.
    pollfds: Vec<libc::pollfd>,
    entries: Vec<(Token, Interest)>,
    /// Indexed by descriptor: its position in `pollfds`, or `VACANT`.
    index: Vec<usize>,
}

impl PollPoller {
    pub(crate) fn new() -> Self {
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

impl Poller for PollPoller {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let idx = usize::try_from(fd).map_err(|_| invalid_fd(Backend::Poll, fd))?;
        if self.slot(fd).is_some() {
            return Err(already_registered(Backend::Poll, fd));
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
        let i = self
            .slot(fd)
            .ok_or_else(|| not_registered(Backend::Poll, fd))?;
        self.pollfds[i].events = poll_events(interest);
        self.pollfds[i].revents = 0;
        self.entries[i] = (token, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self
            .slot(fd)
            .ok_or_else(|| not_registered(Backend::Poll, fd))?;
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
        let mut left = ready_count(n)?;
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

    #[cfg(test)]
    fn backend(&self) -> Backend {
        Backend::Poll
    }
}

#[cfg(test)]
mod tests {
    //! Poll-only tests; what every backend must do is in `conformance`.

    use super::*;
    use crate::event::conformance::{ev, socketpair, wait, write, LONG};
    use std::os::fd::AsRawFd;

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
}

//! Setting up a child's end of the channel: arranging to die with the
//! server, and adopting the Unix socket the server handed down.
//!
//! The disk helpers and the CGI runner start the same way: note the parent
//! at the very start of `main`, ask for a parent-death signal (the helper
//! wants SIGKILL; the runner SIGTERM, so that it can kill its scripts
//! first), check that the parent is still the one noted, then take over the
//! inherited descriptor named by `--channel-fd`. Each child words its own
//! errors; the functions here say only what went wrong.

use std::fmt;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::{fstat, SFlag};
use nix::unistd::Pid;

/// The parent died before the child could arrange to die with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orphaned;

impl fmt::Display for Orphaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server exited before this process could start")
    }
}

impl std::error::Error for Orphaned {}

/// Arranges for `signal` to be sent to this process when its parent dies.
/// `ppid_at_start` is the parent seen at the very start of `main`: if it
/// has changed by now, the parent died before `PR_SET_PDEATHSIG` could
/// take effect.
///
/// A parent of 1 is not in itself taken as death: in a container the
/// server may be PID 1. A server that died before we started is still
/// noticed, as end-of-file on the channel.
pub fn die_with_parent(ppid_at_start: Pid, signal: Signal) -> Result<(), Orphaned> {
    // Failure here (not Linux?) leaves end-of-file on the channel as the
    // only way to notice the server's death, which is still enough.
    let _ = nix::sys::prctl::set_pdeathsig(signal);
    if nix::unistd::getppid() != ppid_at_start {
        return Err(Orphaned);
    }
    Ok(())
}

/// Why an inherited descriptor cannot be the channel, for a person to read
/// (for example "descriptor 9: Bad file number").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChannel(pub String);

impl fmt::Display for BadChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadChannel {}

/// Takes ownership of the inherited socket `fd`: checks that it is an open
/// socket, and makes it close-on-exec (so that nothing the child starts
/// inherits it) and blocking (the children read and write it with
/// blocking calls, or pass `MSG_DONTWAIT` where they must not wait; a
/// socket inherited in non-blocking mode would make a reader spin).
pub fn adopt_socket(fd: RawFd) -> Result<OwnedFd, BadChannel> {
    if fd < 0 {
        return Err(BadChannel(format!("{fd} is not a descriptor")));
    }
    // SAFETY: only used for the checks below, while `fd` is open; a closed
    // descriptor makes fcntl fail with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let bad = |e: Errno| BadChannel(format!("descriptor {fd}: {}", e.desc()));
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(bad)?;
    let stat = fstat(borrowed).map_err(bad)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(BadChannel(format!("descriptor {fd} is not a socket")));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(bad)?;
    let flags = OFlag::from_bits_truncate(fcntl(borrowed, FcntlArg::F_GETFL).map_err(bad)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(borrowed, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map_err(bad)?;
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process for its exclusive use by the server; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_parent_seen_at_start_is_still_there() {
        let ppid = nix::unistd::getppid();
        let same = die_with_parent(ppid, Signal::SIGKILL);
        // A parent that is not ours counts as one that has gone.
        let other = Pid::from_raw(ppid.as_raw() + 1);
        let changed = die_with_parent(other, Signal::SIGTERM);
        // Leave this test process as it was before asserting anything.
        nix::sys::prctl::set_pdeathsig(None).expect("clear pdeathsig");
        assert_eq!(same, Ok(()));
        assert_eq!(changed, Err(Orphaned));
    }

    #[test]
    fn a_socket_is_adopted_close_on_exec_and_blocking() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        let fd = theirs.into_raw_fd();
        // SAFETY: `fd` is open and owned by nobody else (`theirs` gave it
        // up); clearing close-on-exec touches no memory.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let owned = adopt_socket(fd).expect("adopted");
        assert_eq!(owned.as_raw_fd(), fd);
        let fd_flags = fcntl(owned.as_fd(), FcntlArg::F_GETFD).expect("F_GETFD");
        assert!(FdFlag::from_bits_truncate(fd_flags).contains(FdFlag::FD_CLOEXEC));
        let fl = fcntl(owned.as_fd(), FcntlArg::F_GETFL).expect("F_GETFL");
        assert!(!OFlag::from_bits_truncate(fl).contains(OFlag::O_NONBLOCK));
        drop(ours);
    }

    #[test]
    fn anything_but_an_open_socket_is_refused() {
        assert_eq!(
            adopt_socket(-1).err(),
            Some(BadChannel("-1 is not a descriptor".into()))
        );
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fd = file.as_raw_fd();
        assert_eq!(
            adopt_socket(fd).err(),
            Some(BadChannel(format!("descriptor {fd} is not a socket")))
        );
        drop(file);
        let closed = adopt_socket(999_999).expect_err("a closed descriptor");
        assert!(closed.0.starts_with("descriptor 999999: "), "{closed}");
    }
}

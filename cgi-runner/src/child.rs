//! Becoming the server's child: parent-death signal, child-subreaper, and
//! adopting the inherited socket.

use std::fmt;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::{fstat, SFlag};
use nix::unistd::Pid;

/// Why the runner cannot start as a child.
#[derive(Debug)]
pub enum SetupError {
    /// The parent died before we could arrange to die with it.
    Orphaned,
    /// `--channel-fd` does not name a usable socket.
    BadChannel(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Orphaned => write!(f, "the server exited before the runner started"),
            SetupError::BadChannel(why) => write!(f, "--channel-fd: {why}"),
        }
    }
}

/// Arranges to be killed when the server dies. `ppid_at_start` is the
/// parent seen at the very start of `main`: if it has changed by now, the
/// server died before `PR_SET_PDEATHSIG` could take effect.
///
/// A parent of 1 is not in itself taken as death: in a container the server
/// may be PID 1. A server that died before we started is still noticed,
/// as end-of-file on the channel.
pub fn die_with_parent(ppid_at_start: Pid) -> Result<(), SetupError> {
    // Failure here (not Linux?) leaves end-of-file on the channel as the
    // only way to notice the server's death, which is still enough.
    // SIGTERM rather than SIGKILL: the runner catches it and kills its
    // scripts' process groups before it exits (see `sigchld`).
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    if nix::unistd::getppid() != ppid_at_start {
        return Err(SetupError::Orphaned);
    }
    Ok(())
}

/// Asks the kernel to reparent orphaned descendants (a script's background
/// children whose parent exited) to the runner rather than to init, so that
/// the runner reaps them. Failure only means init reaps them instead.
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Takes ownership of the inherited socket `fd`: checks that it is an open
/// socket and makes it close-on-exec (so no script inherits it) and
/// blocking (writes to the server block; reads pass `MSG_DONTWAIT`).
pub fn adopt_channel(fd: RawFd) -> Result<UnixStream, SetupError> {
    if fd < 0 {
        return Err(SetupError::BadChannel(format!("{fd} is not a descriptor")));
    }
    // SAFETY: only used for the checks below, while `fd` is open; a closed
    // descriptor makes fcntl fail with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let bad =
        |e: nix::errno::Errno| SetupError::BadChannel(format!("descriptor {fd}: {}", e.desc()));
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(bad)?;
    let stat = fstat(borrowed).map_err(bad)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(SetupError::BadChannel(format!(
            "descriptor {fd} is not a socket"
        )));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(bad)?;
    let flags = OFlag::from_bits_truncate(fcntl(borrowed, FcntlArg::F_GETFL).map_err(bad)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(borrowed, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map_err(bad)?;
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process for its exclusive use by the server; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(UnixStream::from(owned))
}

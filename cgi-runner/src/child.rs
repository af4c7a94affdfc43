//! Becoming the server's child: parent-death signal, child-subreaper, and
//! adopting the inherited socket (the first and last through
//! [`protocol::child`]).

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use protocol::child::{adopt_socket, BadChannel, Orphaned};

/// Arranges to be signalled when the server dies. `ppid_at_start` is the
/// parent seen at the very start of `main`; see
/// [`protocol::child::die_with_parent`].
pub fn die_with_parent(ppid_at_start: Pid) -> Result<(), Orphaned> {
    // SIGTERM rather than SIGKILL: the runner catches it and kills its
    // scripts' process groups before it exits (see `sigchld`).
    protocol::child::die_with_parent(ppid_at_start, Signal::SIGTERM)
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
pub fn adopt_channel(fd: RawFd) -> Result<UnixStream, BadChannel> {
    Ok(UnixStream::from(adopt_socket(fd)?))
}

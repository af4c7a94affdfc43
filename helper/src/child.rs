//! Becoming the server's child: parent-death signal, and adopting the
//! inherited socket as a [`Channel`] (both through [`protocol::child`]).

use std::os::fd::RawFd;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use protocol::child::{adopt_socket, BadChannel, Orphaned};
use protocol::Channel;

/// Arranges to be killed (SIGKILL) when the server dies. `ppid_at_start`
/// is the parent seen at the very start of `main`; see
/// [`protocol::child::die_with_parent`].
pub fn die_with_parent(ppid_at_start: Pid) -> Result<(), Orphaned> {
    protocol::child::die_with_parent(ppid_at_start, Signal::SIGKILL)
}

/// Takes ownership of the inherited socket `fd`: checks that it is an open
/// socket, makes it close-on-exec and blocking (the channel is read with
/// blocking calls), and wraps it.
pub fn adopt_channel(fd: RawFd) -> Result<Channel, BadChannel> {
    Ok(Channel::from_fd(adopt_socket(fd)?))
}

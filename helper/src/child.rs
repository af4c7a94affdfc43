//! Becoming the server's child: parent-death signal, and adopting the
//! inherited socket as a [`Channel`] (both through [`protocol::child`]).

use std::fmt;
use std::os::fd::RawFd;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use protocol::child::{adopt_socket, BadChannel, Orphaned};
use protocol::Channel;

/// Why the helper cannot start as a child.
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
            SetupError::Orphaned => write!(f, "the server exited before the helper started"),
            SetupError::BadChannel(why) => write!(f, "--channel-fd: {why}"),
        }
    }
}

/// Arranges to be killed (SIGKILL) when the server dies. `ppid_at_start` is the parent seen at the very
/// start of `main`; see [`protocol::child::die_with_parent`].
pub fn die_with_parent(ppid_at_start: Pid) -> Result<(), SetupError> {
    protocol::child::die_with_parent(ppid_at_start, Signal::SIGKILL)
        .map_err(|Orphaned| SetupError::Orphaned)
}

/// Takes ownership of the inherited socket `fd`: checks that it is an open
/// socket, makes it close-on-exec and blocking (the channel is read with
/// blocking calls), and wraps it.
pub fn adopt_channel(fd: RawFd) -> Result<Channel, SetupError> {
    Ok(Channel::from_fd(
        adopt_socket(fd).map_err(|BadChannel(why)| SetupError::BadChannel(why))?,
    ))
}

//! Signalling a child's whole process group: a CGI script is started as
//! the leader of a group of its own (its pid is the group's id), so that
//! a time limit or a lost runner ends everything it started at once.

use nix::sys::signal::Signal;

/// Signals the process group whose leader is `pid`.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

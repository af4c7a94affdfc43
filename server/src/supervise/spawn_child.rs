//! Starting a child process (a helper or the CGI runner) with one end of
//! a Unix socketpair as its descriptor 3. Every other descriptor the
//! server holds is close-on-exec, so the child inherits nothing else.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The descriptor number the child finds its channel on.
pub(crate) const CHILD_CHANNEL_FD: RawFd = 3;

/// A started child and the server's end of its channel (non-blocking).
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) sock: UnixStream,
}

/// Starts `binary` with `args`, followed by `--channel-fd 3`.
pub(crate) fn spawn_child(binary: &Path, args: &[OsString]) -> io::Result<Spawned> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let their_fd = theirs.as_raw_fd();
    let mut command = Command::new(binary);
    command
        .args(args)
        .arg("--channel-fd")
        .arg(CHILD_CHANNEL_FD.to_string())
        .stdin(Stdio::null())
        // Its own process group: a Ctrl-C on the terminal reaches the
        // server alone, which then drains and stops its children itself.
        .process_group(0);
    // SAFETY: only async-signal-safe calls (dup2, fcntl) run between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            if their_fd == CHILD_CHANNEL_FD {
                let flags = libc::fcntl(their_fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(their_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(their_fd, CHILD_CHANNEL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    Ok(Spawned { child, sock: ours })
}

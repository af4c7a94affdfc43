//! Starting a child binary (the helper or the cgi-runner) the way the
//! server does, for those crates' own tests: over a socketpair whose child
//! end it inherits as `--channel-fd N`; waiting for it with a deadline;
//! and starting it under a short-lived parent, to show that it dies with
//! its parent.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::binaries::spawn_locked;

/// Lets the child inherit `fd` (std's sockets are close-on-exec).
pub fn inherit(cmd: &mut Command, fd: RawFd) {
    // SAFETY: fcntl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits up to `timeout` for `child` to exit; kills it and panics past
/// that.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `bin --root ROOT --channel-fd N` in the background of a
/// `/bin/sh` that exits once `gate` exists (or after a minute or more,
/// should the test fail first), and returns that shell and our end of the
/// child's socket. Once the shell has exited, only the parent-death
/// signal can end the child: we still hold our end open.
pub fn spawn_under_short_lived_parent(bin: &Path, root: &Path, gate: &Path) -> (Child, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(
            "\"$0\" --root \"$1\" --channel-fd \"$2\" &\n\
             i=0; while [ ! -e \"$3\" ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done",
        )
        .arg(bin)
        .arg(root)
        .arg(fd.to_string())
        .arg(gate)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    inherit(&mut cmd, fd);
    let sh = spawn_locked(&mut cmd);
    drop(theirs);
    (sh, ours)
}

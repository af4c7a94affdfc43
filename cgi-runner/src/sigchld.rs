//! `SIGCHLD` delivered into the event loop through signal-hook's
//! self-pipe: the handler writes one byte to a non-blocking socket whose
//! other end sits in the loop's `poll` set. The loop then reaps with
//! `waitpid(-1, WNOHANG)` until nothing is left, so signals that were
//! merged are no problem.
//!
//! `SIGTERM` (also the runner's parent-death signal) sets a flag and wakes
//! the loop the same way, asking it to stop: the runner then kills every
//! script's process group before it exits, so no script outlives the
//! server.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGTERM};

/// The loop's end of the signal pipe, and the flag `SIGTERM` sets.
#[derive(Debug)]
pub struct SigChld {
    wake: UnixStream,
    terminate: Arc<AtomicBool>,
}

impl SigChld {
    /// Creates the pipe and installs the handlers. Call once, before the
    /// first child is started.
    pub fn install() -> io::Result<SigChld> {
        // Both ends close-on-exec (std's socketpair), so no script inherits
        // them; signal-hook makes the write end non-blocking itself.
        let (wake, notify) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        let terminate = Arc::new(AtomicBool::new(false));
        // The flag first: the loop reads it after the wake-up.
        signal_hook::flag::register(SIGTERM, Arc::clone(&terminate))?;
        signal_hook::low_level::pipe::register(SIGTERM, notify.try_clone()?)?;
        signal_hook::low_level::pipe::register(SIGCHLD, notify)?;
        Ok(SigChld { wake, terminate })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// True once SIGTERM has arrived.
    pub fn terminate_requested(&self) -> bool {
        self.terminate.load(Ordering::SeqCst)
    }

    /// Empties the pipe (before reaping, so that a signal arriving while
    /// reaping leaves a byte for the next turn).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.wake).read(&mut buf) {
                Ok(n) if n == buf.len() => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        }
    }
}

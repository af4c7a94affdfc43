//! `SIGCHLD` delivered into the event loop through a self-pipe: the
//! handler writes one byte to a non-blocking pipe whose read end sits in
//! the loop's `poll` set. The loop then reaps with `waitpid(-1, WNOHANG)`
//! until nothing is left, so signals that were merged are no problem.
//!
//! `SIGTERM` (also the runner's parent-death signal) wakes the loop the
//! same way and asks it to stop: the runner then kills every script's
//! process group before it exits, so no script outlives the server.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The pipe's write end, for the handler (-1 until installed).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// Set by the SIGTERM handler.
static TERMINATE: AtomicBool = AtomicBool::new(false);

/// True once SIGTERM has arrived.
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::Relaxed)
}

extern "C" fn on_sigterm(signal: libc::c_int) {
    TERMINATE.store(true, Ordering::Relaxed);
    on_sigchld(signal);
}

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = WRITE_END.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno is thread-local and saved around the only call that may
    // change it; write(2) is async-signal-safe. A full pipe (EAGAIN) means
    // a wake-up is already pending, which is all we need.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let byte = 1u8;
        libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
        *errno = saved;
    }
}

/// The read end of the self-pipe.
#[derive(Debug)]
pub struct SigChld {
    read: OwnedFd,
}

impl SigChld {
    /// Creates the pipe and installs the handler (`SA_RESTART`,
    /// `SA_NOCLDSTOP`). Call once, before the first child is started.
    pub fn install() -> io::Result<SigChld> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // The write end lives as long as the process: the handler may run
        // at any time.
        let previous = WRITE_END.swap(write.into_raw_fd(), Ordering::Relaxed);
        if previous >= 0 {
            // SAFETY: a descriptor we created and leaked in an earlier call.
            unsafe { libc::close(previous) };
        }
        let action = SigAction::new(
            SigHandler::Handler(on_sigchld),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { sigaction(Signal::SIGCHLD, &action) }?;
        let action = SigAction::new(
            SigHandler::Handler(on_sigterm),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores an atomic and calls write(2).
        unsafe { sigaction(Signal::SIGTERM, &action) }?;
        Ok(SigChld { read })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe (before reaping, so that a signal arriving while
    /// reaping leaves a byte for the next turn).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(self.read.as_fd(), &mut buf) {
                Ok(n) if n == buf.len() => {}
                Err(nix::errno::Errno::EINTR) => {}
                _ => return,
            }
        }
    }
}

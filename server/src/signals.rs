//! Signals delivered into the event loop: each handler sets a flag and
//! writes a byte to a socket the loop watches (signal-hook's self-pipe).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};

/// Which signals arrived since the last look.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Arrived {
    pub(crate) child: bool,
    pub(crate) terminate: bool,
    pub(crate) hangup: bool,
}

/// The loop's end of the signal pipe and the flags behind it.
pub(crate) struct Signals {
    wake: UnixStream,
    child: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    pub(crate) fn install() -> io::Result<Signals> {
        let (wake, notify) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        notify.set_nonblocking(true)?;
        let child = Arc::new(AtomicBool::new(false));
        let terminate = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        for (signal, flag) in [
            (SIGCHLD, &child),
            (SIGTERM, &terminate),
            (SIGINT, &terminate),
            (SIGHUP, &hangup),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, notify.try_clone()?)?;
        }
        Ok(Signals {
            wake,
            child,
            terminate,
            hangup,
        })
    }

    /// The descriptor to watch for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Drains the pipe and reports (and clears) the flags.
    pub(crate) fn take(&mut self) -> Arrived {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        Arrived {
            child: self.child.swap(false, Ordering::SeqCst),
            terminate: self.terminate.swap(false, Ordering::SeqCst),
            hangup: self.hangup.swap(false, Ordering::SeqCst),
        }
    }
}

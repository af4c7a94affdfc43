//! The server's ends of a script's pipes: non-blocking, in the poller
//! only while wanted, and the signals that stop a script's process group.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::event::{Interest, Poller, Token};

/// One end of a script's stdin or stdout and what the poller watches on it.
#[derive(Debug)]
pub(crate) struct Pipe {
    file: File,
    interest: Interest,
}

impl Pipe {
    /// Takes a pipe end passed by the runner, made non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Pipe> {
        let file = File::from(fd);
        set_nonblocking(&file)?;
        Ok(Pipe {
            file,
            interest: Interest::NONE,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Watches the pipe for `want`. A pipe is in the poller only while it
    /// is wanted: a pipe whose other end closed is reported on every
    /// wait, even with no interest set. False if the poller refused it.
    pub(crate) fn watch(&mut self, poller: &mut dyn Poller, token: Token, want: Interest) -> bool {
        if self.interest == want {
            return true;
        }
        let fd = self.fd();
        let result = if want == Interest::NONE {
            poller.deregister(fd)
        } else if self.interest == Interest::NONE {
            poller.register(fd, token, want)
        } else {
            poller.reregister(fd, token, want)
        };
        if result.is_ok() {
            self.interest = want;
        }
        result.is_ok()
    }

    /// Writes what the pipe takes now.
    pub(crate) fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < data.len() {
            match self.file.write(&data[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Reads what the pipe holds, up to `buf.len()` bytes.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.file, buf)
    }
}

/// Takes a pipe out of the poller (if it is in) and closes it.
pub(crate) fn close_pipe(poller: &mut dyn Poller, pipe: &mut Option<Pipe>) {
    if let Some(pipe) = pipe.take() {
        if pipe.interest != Interest::NONE {
            let _ = poller.deregister(pipe.fd());
        }
    }
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

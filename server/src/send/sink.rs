//! Where a connection's outgoing bytes go: the [`Sink`] an output queue
//! writes to. A plain descriptor ([`FdSink`]: a client's TCP socket, a
//! script's stdin pipe) takes them as they are, with `writev` and
//! `sendfile`; a TLS session (`crate::transport`) encrypts them first.
//! The send path and the output queue know only this trait, so neither
//! knows whether a connection is encrypted.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// A destination for response bytes. Every call takes what it can
/// without blocking and says how many bytes it took (`WouldBlock` when
/// none).
pub(crate) trait Sink {
    /// Writes from `slices`, in order. `more` says that a file's bytes
    /// follow at once, so a short head may wait to go out with them.
    fn write_slices(&mut self, slices: &[IoSlice<'_>], more: bool) -> io::Result<usize>;

    /// Sends `count` bytes of `file` from `offset`. The pages were just
    /// found in memory, so reading them does not wait on the disk.
    fn send_file(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<usize>;

    /// Writes `len` bytes from `start`, memory shared with the helpers
    /// over which no Rust slice may be made.
    ///
    /// # Safety
    /// `start..start + len` must be mapped and readable for the call.
    unsafe fn write_shared(&mut self, start: *const u8, len: usize) -> io::Result<usize>;

    /// While a file body is written, a socket joins small writes into
    /// full segments (TCP_NODELAY off); afterwards it sends at once.
    fn join_segments(&mut self, on: bool);
}

/// A descriptor written to as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FdSink(pub(crate) RawFd);

impl Sink for FdSink {
    fn write_slices(&mut self, slices: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        // SAFETY: IoSlice is ABI-compatible with iovec and every one
        // points into a live buffer of the caller's for the call; the
        // msghdr is zeroed but for its iovecs.
        let n = unsafe {
            if more {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = slices.len();
                libc::sendmsg(self.0, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
            } else {
                libc::writev(self.0, slices.as_ptr().cast(), slices.len() as libc::c_int)
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn send_file(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<usize> {
        let mut off = offset as libc::off_t;
        // SAFETY: plain syscall on descriptors we own; `off` is a valid
        // pointer.
        let n = unsafe { libc::sendfile(self.0, file, &mut off, count as usize) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(shrank());
        }
        Ok(n as usize)
    }

    unsafe fn write_shared(&mut self, start: *const u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller vouches for the span; write(2) only reads it.
        let n = unsafe { libc::write(self.0, start.cast(), len) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn join_segments(&mut self, on: bool) {
        set_nodelay(self.0, !on);
    }
}

/// Reads `file` from `offset` into `buffer` (pages just found in memory,
/// for a sink that cannot `sendfile`): how many bytes, 0 at its end.
pub(crate) fn pread(file: RawFd, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: pread into a live, writable buffer of its length.
    let n = unsafe {
        libc::pread(
            file,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            offset as libc::off_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The error for a file that ended before the bytes it was to send.
pub(crate) fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shrank while it was being sent",
    )
}

/// Sets TCP_NODELAY on `sock` or clears it. Failure (not a TCP socket:
/// a pipe, or a socketpair in the unit tests) only costs segment sizes.
pub(crate) fn set_nodelay(sock: RawFd, on: bool) {
    let value = libc::c_int::from(on);
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            sock,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

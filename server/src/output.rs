//! A connection's outgoing bytes: response heads, cached bodies shared
//! with the cache, and file ranges sent with `sendfile`, written in order
//! without blocking.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// The most iovecs handed to one `writev`.
const MAX_IOVECS: usize = 32;

/// The most bytes one `sendfile` call is asked for.
const SENDFILE_CHUNK: usize = 1 << 20;

/// One piece of a response.
#[derive(Debug)]
enum Chunk {
    Owned {
        data: Vec<u8>,
        pos: usize,
    },
    Shared {
        data: Rc<[u8]>,
        pos: usize,
        end: usize,
    },
    File {
        fd: Rc<OwnedFd>,
        offset: u64,
        end: u64,
    },
}

impl Chunk {
    fn remaining(&self) -> u64 {
        match self {
            Chunk::Owned { data, pos } => (data.len() - pos) as u64,
            Chunk::Shared { pos, end, .. } => (end - pos) as u64,
            Chunk::File { offset, end, .. } => end - offset,
        }
    }
}

/// What a write attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is written.
    All,
    /// The socket is full, or this turn's budget is spent; more remains.
    Partly,
}

/// The queue of response pieces for one connection.
#[derive(Debug, Default)]
pub struct Output {
    chunks: VecDeque<Chunk>,
    queued: u64,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes still to be written.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    pub fn push_owned(&mut self, data: Vec<u8>) {
        if !data.is_empty() {
            self.queued += data.len() as u64;
            self.chunks.push_back(Chunk::Owned { data, pos: 0 });
        }
    }

    pub fn push_shared(&mut self, data: Rc<[u8]>, start: usize, end: usize) {
        if start < end && end <= data.len() {
            self.queued += (end - start) as u64;
            self.chunks.push_back(Chunk::Shared {
                data,
                pos: start,
                end,
            });
        }
    }

    pub fn push_file(&mut self, fd: Rc<OwnedFd>, start: u64, end: u64) {
        if start < end {
            self.queued += end - start;
            self.chunks.push_back(Chunk::File {
                fd,
                offset: start,
                end,
            });
        }
    }

    /// Writes to `sock` until the queue is empty, the socket would block,
    /// or about `budget` bytes have gone out. Errors (the peer went away,
    /// a file shrank under us) end the connection.
    pub fn write_to(&mut self, sock: RawFd, budget: u64) -> io::Result<Flushed> {
        let mut written = 0u64;
        while let Some(front) = self.chunks.front() {
            if written >= budget {
                return Ok(Flushed::Partly);
            }
            let result = match front {
                Chunk::File { fd, offset, end } => send_file(sock, fd.as_raw_fd(), *offset, *end),
                _ => self.write_memory(sock),
            };
            match result {
                Ok(n) => {
                    written += n as u64;
                    self.advance(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Partly),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    fn write_memory(&self, sock: RawFd) -> io::Result<usize> {
        let mut iov: [libc::iovec; MAX_IOVECS] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        let mut count = 0;
        for chunk in self.chunks.iter().take(MAX_IOVECS) {
            let slice: &[u8] = match chunk {
                Chunk::Owned { data, pos } => &data[*pos..],
                Chunk::Shared { data, pos, end } => &data[*pos..*end],
                Chunk::File { .. } => break,
            };
            iov[count] = libc::iovec {
                iov_base: slice.as_ptr() as *mut libc::c_void,
                iov_len: slice.len(),
            };
            count += 1;
        }
        // SAFETY: every iovec points into a buffer owned by `self.chunks`,
        // which is not touched until writev returns.
        let n = unsafe { libc::writev(sock, iov.as_ptr(), count as libc::c_int) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Marks `n` bytes as written, popping finished chunks.
    fn advance(&mut self, mut n: u64) {
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let remaining = front.remaining();
            if n >= remaining {
                n -= remaining;
                self.chunks.pop_front();
                continue;
            }
            match front {
                Chunk::Owned { pos, .. } | Chunk::Shared { pos, .. } => *pos += n as usize,
                Chunk::File { offset, .. } => *offset += n,
            }
            n = 0;
        }
        while self.chunks.front().is_some_and(|c| c.remaining() == 0) {
            self.chunks.pop_front();
        }
    }
}

/// One `sendfile` call from `offset` towards `end`.
fn send_file(sock: RawFd, file: RawFd, offset: u64, end: u64) -> io::Result<usize> {
    let count = (end - offset).min(SENDFILE_CHUNK as u64) as usize;
    let mut off = offset as libc::off_t;
    // SAFETY: plain syscall on descriptors we own; `off` is a valid pointer.
    let n = unsafe { libc::sendfile(sock, file, &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while it was being sent",
        ));
    }
    Ok(n as usize)
}

/// Everything `out` holds, written through a socketpair and read back
/// (for tests of what gets queued).
#[cfg(test)]
pub(crate) fn written(out: &mut Output) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let (a, mut b) = std::os::unix::net::UnixStream::pair().expect("pair");
    out.write_to(a.as_raw_fd(), u64::MAX).expect("write");
    drop(a);
    let mut s = String::new();
    b.read_to_string(&mut s).expect("read");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn pieces_go_out_in_order() {
        let (a, mut b) = UnixStream::pair().expect("socketpair");
        let mut file = std::fs::File::create(
            std::env::temp_dir().join(format!("amped-output-{}", std::process::id())),
        )
        .expect("temp file");
        file.write_all(b"0123456789").expect("write");
        let path = std::env::temp_dir().join(format!("amped-output-{}", std::process::id()));
        let fd: OwnedFd = std::fs::File::open(&path).expect("open").into();
        let _ = std::fs::remove_file(&path);

        let mut out = Output::default();
        out.push_owned(b"head:".to_vec());
        out.push_shared(Rc::from(&b"xxBODYxx"[..]), 2, 6);
        out.push_file(Rc::new(fd), 3, 7);
        out.push_owned(b":tail".to_vec());
        assert_eq!(out.queued(), 18);
        assert_eq!(
            out.write_to(a.as_raw_fd(), u64::MAX).expect("write"),
            Flushed::All
        );
        assert!(out.is_empty());
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).expect("read");
        assert_eq!(got, "head:BODY3456:tail");
    }
}

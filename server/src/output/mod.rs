//! A connection's outgoing bytes: response heads, cached bodies shared
//! with the cache, and file bodies sent window by window (see
//! [`crate::send`]), written in order without blocking. A queue written
//! out frees its storage, so that an idle connection holds none.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::rc::Rc;

use crate::http::body::BodyEncoder;
use crate::send::{FileBody, FrontNeeds, OpenFile, PlanWindows, Sink};

/// The most iovecs handed to one `writev`.
const MAX_IOVECS: usize = 32;

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
    File(FileBody),
}

impl Chunk {
    fn remaining(&self) -> u64 {
        match self {
            Chunk::Owned { data, pos } => (data.len() - pos) as u64,
            Chunk::Shared { pos, end, .. } => (end - pos) as u64,
            Chunk::File(body) => body.remaining(),
        }
    }
}

/// What a write attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued is written.
    All,
    /// The socket is full, or this turn's budget is spent; more remains.
    Partly,
    /// The front is a file body waiting for a helper to read its next
    /// window: nothing can be written until that arrives.
    WaitingForDisk,
}

/// The queue of response pieces for one connection.
#[derive(Debug, Default)]
pub(crate) struct Output {
    chunks: VecDeque<Chunk>,
    queued: u64,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Pieces the queue has room for without growing (0 once written out).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.capacity()
    }

    /// Bytes still to be written.
    pub(crate) fn queued(&self) -> u64 {
        self.queued
    }

    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        if !data.is_empty() {
            self.queued += data.len() as u64;
            self.chunks.push_back(Chunk::Owned { data, pos: 0 });
        }
    }

    pub(crate) fn push_shared(&mut self, data: Rc<[u8]>, start: usize, end: usize) {
        if start < end && end <= data.len() {
            self.queued += (end - start) as u64;
            self.chunks.push_back(Chunk::Shared {
                data,
                pos: start,
                end,
            });
        }
    }

    pub(crate) fn push_file(&mut self, file: Rc<OpenFile>, start: u64, end: u64) {
        if start < end {
            self.queued += end - start;
            self.chunks
                .push_back(Chunk::File(FileBody::new(file, start, end)));
        }
    }

    /// Queues a piece of a response body as `body` frames it. Returns the
    /// body bytes it carries.
    pub(crate) fn push_body(&mut self, body: &mut BodyEncoder, data: &[u8]) -> u64 {
        let (framed, passed) = body.frame(data);
        self.push_owned(framed);
        passed
    }

    /// Queues `bytes[start..end]` of a length body without copying.
    /// Returns the body bytes queued.
    pub(crate) fn push_body_shared(
        &mut self,
        body: &mut BodyEncoder,
        bytes: Rc<[u8]>,
        start: usize,
        end: usize,
    ) -> u64 {
        let Some(end) = body.take_range(start as u64, end as u64) else {
            return 0;
        };
        self.push_shared(bytes, start, end as usize);
        (end as usize).saturating_sub(start) as u64
    }

    /// Queues bytes `start..end` of a file of a length body, to be sent
    /// window by window. Returns the body bytes queued.
    pub(crate) fn push_body_file(
        &mut self,
        body: &mut BodyEncoder,
        file: Rc<OpenFile>,
        start: u64,
        end: u64,
    ) -> u64 {
        let Some(end) = body.take_range(start, end) else {
            return 0;
        };
        self.push_file(file, start, end);
        end.saturating_sub(start)
    }

    /// Ends a response body (queues a chunked body's last chunk). True
    /// when the body is complete as framed.
    pub(crate) fn finish_body(&mut self, body: &mut BodyEncoder) -> bool {
        let (last, complete) = body.finish();
        if !last.is_empty() {
            self.push_owned(last.to_vec());
        }
        complete
    }

    /// What the front of the queue needs before it can be written: a file
    /// body's need, `Nothing` for bytes in memory.
    fn front_needs(&self) -> FrontNeeds {
        match self.chunks.front() {
            Some(Chunk::File(body)) => body.front_needs(),
            _ => FrontNeeds::Nothing,
        }
    }

    /// True when the front is a file body waiting for a helper's read.
    pub(crate) fn waits_for_disk(&self) -> bool {
        self.front_needs() == FrontNeeds::Disk
    }

    /// True when the front is a file body waiting for room in the window
    /// budget.
    pub(crate) fn waits_for_memory(&self) -> bool {
        matches!(self.front_needs(), FrontNeeds::Memory(_))
    }

    /// The file body at the front of the queue, if that is what is next.
    pub(crate) fn front_file(&mut self) -> Option<&mut FileBody> {
        match self.chunks.front_mut() {
            Some(Chunk::File(body)) => Some(body),
            _ => None,
        }
    }

    /// Writes to `sink` until the queue is empty, the socket would block,
    /// the front file body waits for the disk, or about `budget` bytes
    /// have gone out; `planner` plans a file body's windows as they are
    /// needed. Once everything is written the queue's storage is freed.
    /// Errors (the peer went away, a file shrank under us) end the
    /// connection.
    pub(crate) fn write_to(
        &mut self,
        sink: &mut dyn Sink,
        budget: u64,
        planner: &mut dyn PlanWindows,
    ) -> io::Result<Flushed> {
        // While a file body is queued, TCP_NODELAY (inherited from the
        // listener, for small responses) is off and the head goes with
        // MSG_MORE, so the head and the tail of each `sendfile` call join
        // full segments instead of going out as small ones of their own.
        // Small segments cost the client delayed ACKs and the server
        // spurious tail-loss probes (the figures are in the commit that
        // made this change). Turning it back on when the body is done
        // sends what Nagle holds at once.
        let first_body = self.chunks.iter_mut().find_map(|c| match c {
            Chunk::File(body) => Some(body),
            _ => None,
        });
        let had_body = first_body.is_some();
        if first_body.is_some_and(FileBody::join_segments_once) {
            sink.join_segments(true);
        }
        let written = self.write_chunks(sink, budget, planner);
        if had_body && !self.holds_file() {
            sink.join_segments(false);
        }
        written
    }

    fn holds_file(&self) -> bool {
        self.chunks.iter().any(|c| matches!(c, Chunk::File(_)))
    }

    fn write_chunks(
        &mut self,
        sink: &mut dyn Sink,
        budget: u64,
        planner: &mut dyn PlanWindows,
    ) -> io::Result<Flushed> {
        let mut written = 0u64;
        while let Some(front) = self.chunks.front_mut() {
            if written >= budget {
                return Ok(Flushed::Partly);
            }
            let result = match front {
                Chunk::File(body) => {
                    planner.plan(body);
                    if body.front_needs() != FrontNeeds::Nothing {
                        return Ok(Flushed::WaitingForDisk);
                    }
                    // A file body advances itself as it writes.
                    match body.write_to(sink) {
                        Ok(n) => {
                            written += n as u64;
                            self.queued -= (n as u64).min(self.queued);
                            if body.remaining() == 0 {
                                self.chunks.pop_front();
                            }
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => self.write_memory(sink),
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
        self.chunks = VecDeque::new();
        Ok(Flushed::All)
    }

    fn write_memory(&self, sink: &mut dyn Sink) -> io::Result<usize> {
        let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        let mut file_follows = false;
        for chunk in self.chunks.iter().take(MAX_IOVECS) {
            slices[count] = IoSlice::new(match chunk {
                Chunk::Owned { data, pos } => &data[*pos..],
                Chunk::Shared { data, pos, end } => &data[*pos..*end],
                Chunk::File(_) => {
                    file_follows = true;
                    break;
                }
            });
            count += 1;
        }
        // The head waits for the file's first bytes (see write_to).
        sink.write_slices(&slices[..count], file_follows)
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
                // Never reached: file bodies are written and counted above.
                Chunk::File(_) => {}
            }
            n = 0;
        }
        while self.chunks.front().is_some_and(|c| c.remaining() == 0) {
            self.chunks.pop_front();
        }
    }
}

/// Everything `out` holds, written through a socketpair and read back
/// (for tests of what gets queued).
#[cfg(test)]
pub(crate) fn written(out: &mut Output) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let (a, mut b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let mut straight = crate::send::SendStraight;
    let mut sink = crate::send::FdSink(a.as_raw_fd());
    out.write_to(&mut sink, u64::MAX, &mut straight)
        .expect("write");
    drop(a);
    let mut s = String::new();
    b.read_to_string(&mut s).expect("read");
    s
}

#[cfg(test)]
mod file_body_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    #[test]
    fn bodies_are_queued_as_framed() {
        let mut out = Output::default();
        let mut chunked = BodyEncoder::Chunked;
        assert_eq!(out.push_body(&mut chunked, b"hello"), 5);
        assert!(out.finish_body(&mut chunked));
        assert_eq!(written(&mut out), "5\r\nhello\r\n0\r\n\r\n");
        let mut shared = BodyEncoder::Length(4);
        let bytes: Rc<[u8]> = Rc::from(&b"0123456789"[..]);
        assert_eq!(out.push_body_shared(&mut shared, bytes, 2, 9), 4);
        assert!(out.finish_body(&mut shared));
        assert_eq!(written(&mut out), "2345");
        let mut close = BodyEncoder::CloseDelimited;
        assert_eq!(out.push_body(&mut close, b"raw"), 3);
        assert!(!out.finish_body(&mut close));
        assert_eq!(written(&mut out), "raw");
    }

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
        let meta = protocol::FileMeta {
            size: 10,
            mtime_secs: 0,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        let file = OpenFile::open(fd, protocol::Storage::Memory, "f".into(), meta);
        out.push_file(Rc::new(file), 3, 7);
        out.push_owned(b":tail".to_vec());
        assert_eq!(out.queued(), 18);
        assert_eq!(
            out.write_to(
                &mut crate::send::FdSink(a.as_raw_fd()),
                u64::MAX,
                &mut crate::send::SendStraight
            )
            .expect("write"),
            Flushed::All
        );
        assert!(out.is_empty());
        assert_eq!(out.capacity(), 0, "a written-out queue frees its storage");
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).expect("read");
        assert_eq!(got, "head:BODY3456:tail");
    }
}

//! An incremental frame reader that works on blocking and non-blocking
//! sockets alike: feed it with [`FrameReader::read_from`], take whole
//! messages out with [`FrameReader::next_message`].

use std::collections::VecDeque;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::fdpass::recv_with_fds_or_lost;
use crate::frame::{body_len, decode_body, HEADER_LEN};
use crate::{Error, Message, MAX_DESCRIPTORS_PER_MESSAGE};

/// How much room one read asks for.
const READ_CHUNK: usize = 64 * 1024;

/// More descriptors than this waiting without a message to claim them is
/// a protocol error (a peer flooding us with descriptors).
const MAX_QUEUED_FDS: usize = 16;

/// What one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing to read now (non-blocking sockets only).
    WouldBlock,
    /// The peer closed its end.
    Closed,
}

/// One decoded message with the descriptors its frame carried, in the
/// order the sender attached them (exactly
/// [`Message::descriptor_count`] of them; empty for most messages, and
/// for a message whose descriptors this process had no room for).
#[derive(Debug)]
pub struct Received<M> {
    pub message: M,
    pub fds: Vec<OwnedFd>,
}

/// Buffers bytes and descriptors from one socket and cuts them into frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Always initialised to its full length; data lives in `start..end`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: VecDeque<OwnedFd>,
    /// Reads whose descriptors were lost (MSG_CTRUNC at the descriptor
    /// limit): as many messages come out without theirs.
    fds_lost: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes received but not yet returned as a message.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Ensures at least `READ_CHUNK` free bytes after `end`, moving the
    /// pending bytes to the front or growing the buffer as needed.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= READ_CHUNK {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
    }

    /// Reads once from `sock` (with `recvmsg`, so descriptors are kept).
    pub fn read_from(
        &mut self,
        sock: BorrowedFd<'_>,
        nonblocking: bool,
    ) -> Result<ReadStatus, Error> {
        self.make_room();
        let mut received = Vec::new();
        let buf = &mut self.buf[self.end..];
        let result = recv_with_fds_or_lost(sock, buf, &mut received, nonblocking);
        let n = match result {
            Ok((n, lost)) => {
                self.fds_lost += usize::from(lost);
                n
            }
            Err(e) if e.is_would_block() => return Ok(ReadStatus::WouldBlock),
            Err(e) => return Err(e),
        };
        self.end += n;
        self.fds.extend(received);
        if self.fds.len() > MAX_QUEUED_FDS {
            self.fds.clear();
            return Err(Error::UnexpectedDescriptor);
        }
        Ok(if n == 0 {
            ReadStatus::Closed
        } else {
            ReadStatus::Data(n)
        })
    }

    /// Takes the next whole message out of the buffer, if there is one.
    pub fn next_message<M: Message>(&mut self) -> Result<Option<Received<M>>, Error> {
        let available = &self.buf[self.start..self.end];
        if available.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut prefix = [0u8; HEADER_LEN];
        prefix.copy_from_slice(&available[..HEADER_LEN]);
        let len = body_len(prefix)?;
        if available.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let decoded = decode_body::<M>(&available[HEADER_LEN..HEADER_LEN + len]);
        self.start += HEADER_LEN + len;
        let message = match decoded {
            Ok(m) => m,
            Err(e) => {
                self.fds.clear();
                return Err(e);
            }
        };
        let count = message.descriptor_count();
        if count > MAX_DESCRIPTORS_PER_MESSAGE {
            self.fds.clear();
            return Err(Error::Decode(format!(
                "message claims {count} descriptors, more than the {MAX_DESCRIPTORS_PER_MESSAGE} allowed"
            )));
        }
        if self.fds.len() < count {
            if self.fds_lost == 0 {
                return Err(Error::MissingDescriptor);
            }
            // Its descriptors were lost on the way in (this process is at
            // its descriptor limit): the message comes without them, and
            // its receiver answers for that, not the peer.
            self.fds_lost -= 1;
            return Ok(Some(Received {
                message,
                fds: Vec::new(),
            }));
        }
        let fds = self.fds.drain(..count).collect();
        Ok(Some(Received { message, fds }))
    }

    /// Checks what is left once the peer has closed: half a frame or an
    /// unclaimed descriptor is an error.
    pub fn finish(&mut self) -> Result<(), Error> {
        let pending = self.pending();
        if pending > 0 {
            return Err(Error::Truncated(pending));
        }
        if !self.fds.is_empty() {
            self.fds.clear();
            return Err(Error::UnexpectedDescriptor);
        }
        Ok(())
    }
}

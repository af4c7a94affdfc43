//! A non-blocking frame writer for the server's event loop: frames are
//! queued, then flushed whenever the socket is writable.

use std::os::fd::BorrowedFd;

use crate::fdpass::send_with_fds;
use crate::frame::encode_frame;
use crate::{Error, Message};

/// Frames waiting to be written to one socket. Carries no descriptors.
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
    pos: usize,
}

impl FrameWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one message. Messages that claim descriptors are refused.
    pub fn push<M: Message>(&mut self, message: &M) -> Result<(), Error> {
        if message.descriptor_count() != 0 {
            return Err(Error::Encode(
                "FrameWriter cannot attach descriptors".into(),
            ));
        }
        let frame = encode_frame(message)?;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(&frame);
        Ok(())
    }

    /// True when everything queued has been written.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Writes as much as the socket takes without blocking. Returns true
    /// when the queue is empty afterwards.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> Result<bool, Error> {
        while self.pos < self.buf.len() {
            match send_with_fds(sock, &self.buf[self.pos..], &[], true) {
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        self.buf.clear();
        self.pos = 0;
        Ok(true)
    }
}

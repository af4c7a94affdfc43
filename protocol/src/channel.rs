//! A blocking channel, for the child processes: one message in, one out.
//! A child that watches other descriptors too (the CGI runner) polls the
//! socket itself and reads it with [`Channel::read_nonblocking`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::fdpass::send_with_fds;
use crate::frame::encode_frame;
use crate::reader::{FrameReader, ReadStatus, Received};
use crate::{Error, Message};

/// A blocking, framed Unix stream socket.
#[derive(Debug)]
pub struct Channel {
    sock: UnixStream,
    reader: FrameReader,
}

impl Channel {
    pub fn new(sock: UnixStream) -> Self {
        Channel {
            sock,
            reader: FrameReader::new(),
        }
    }

    /// Wraps an inherited descriptor (the socket a child gets from the server).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self::new(UnixStream::from(fd))
    }

    /// Sends one message, attaching `fds` (in this order) to its first
    /// bytes. The message must claim exactly as many descriptors as are
    /// given; nothing is written otherwise. The caller keeps its copies
    /// and may close them as soon as this returns.
    pub fn send<M: Message>(&mut self, message: &M, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        let claimed = message.descriptor_count();
        let given = fds.len();
        if claimed != given {
            return Err(Error::Encode(format!(
                "message claims {claimed} descriptors but {given} given"
            )));
        }
        let frame = encode_frame(message)?;
        let mut sent = send_with_fds(self.sock.as_fd(), &frame, fds, false)?;
        while sent < frame.len() {
            sent += send_with_fds(self.sock.as_fd(), &frame[sent..], &[], false)?;
        }
        Ok(())
    }

    /// Waits for the next message. `Ok(None)` is a clean end-of-file
    /// between frames.
    pub fn recv<M: Message>(&mut self) -> Result<Option<Received<M>>, Error> {
        loop {
            if let Some(received) = self.next_buffered()? {
                return Ok(Some(received));
            }
            if self.read(false)? == ReadStatus::Closed {
                return Ok(None);
            }
        }
    }

    /// The next message among the bytes already read, if a whole one is
    /// there; never reads. For a child that polls the socket itself and
    /// reads with [`Channel::read_nonblocking`].
    pub fn next_buffered<M: Message>(&mut self) -> Result<Option<Received<M>>, Error> {
        self.reader.next_message()
    }

    /// Reads once without waiting (`MSG_DONTWAIT`), into the buffer that
    /// [`Channel::next_buffered`] takes messages from. `Closed` is a clean
    /// end-of-file: half a frame or an unclaimed descriptor left at the end
    /// is an error, as in [`Channel::recv`].
    pub fn read_nonblocking(&mut self) -> Result<ReadStatus, Error> {
        self.read(true)
    }

    fn read(&mut self, nonblocking: bool) -> Result<ReadStatus, Error> {
        let status = self.reader.read_from(self.sock.as_fd(), nonblocking)?;
        if status == ReadStatus::Closed {
            self.reader.finish()?;
        }
        Ok(status)
    }

    /// The underlying socket.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }
}

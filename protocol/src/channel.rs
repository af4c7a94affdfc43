//! A blocking channel, for the child processes: one message in, one out.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::fdpass::send_with_fds;
use crate::frame::encode_frame;
use crate::reader::{FrameReader, ReadStatus, Received};
use crate::{Error, Hello, Message, PROTOCOL_VERSION};

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
            if let Some(received) = self.reader.next_message()? {
                return Ok(Some(received));
            }
            match self.reader.read_from(self.sock.as_fd(), false)? {
                ReadStatus::Data(_) => {}
                ReadStatus::WouldBlock => {}
                ReadStatus::Closed => {
                    self.reader.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    /// The underlying socket.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }
}

impl Hello {
    /// Checks that the peer speaks our protocol version.
    pub fn check_version(&self) -> Result<(), Error> {
        if self.version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: self.version,
            });
        }
        Ok(())
    }
}

//! A non-blocking frame writer for the server's event loop: frames are
//! queued, then flushed whenever the socket is writable. A frame may
//! carry descriptors; they are attached to its first bytes.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::fdpass::send_with_fds;
use crate::frame::encode_frame;
use crate::{Error, Message};

/// Descriptors waiting to go with the frame that starts at `at`.
#[derive(Debug)]
struct Attached {
    /// Offset in the queue's bytes where the frame starts.
    at: usize,
    fds: Vec<OwnedFd>,
}

/// Frames waiting to be written to one socket.
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
    pos: usize,
    /// Descriptors of queued frames, in order of `at`.
    attached: VecDeque<Attached>,
}

impl FrameWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one message that carries no descriptors. Messages that
    /// claim some are refused.
    pub fn push<M: Message>(&mut self, message: &M) -> Result<(), Error> {
        self.push_with_fds(message, Vec::new())
    }

    /// Queues one message with `fds` attached (the writer keeps them open
    /// until they are sent). The message must claim exactly as many
    /// descriptors as are given; nothing is queued otherwise.
    pub fn push_with_fds<M: Message>(
        &mut self,
        message: &M,
        fds: Vec<OwnedFd>,
    ) -> Result<(), Error> {
        let (claimed, given) = (message.descriptor_count(), fds.len());
        if claimed != given {
            return Err(Error::Encode(format!(
                "message claims {claimed} descriptors but {given} given"
            )));
        }
        let frame = encode_frame(message)?;
        if self.is_empty() {
            self.buf.clear();
            self.pos = 0;
        }
        if !fds.is_empty() {
            self.attached.push_back(Attached {
                at: self.buf.len(),
                fds,
            });
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
            // A send stops where the next frame with descriptors starts,
            // so that they go with that frame's first byte.
            let next = self.attached.front();
            let attach_now = next.is_some_and(|a| a.at == self.pos);
            let stop = match next {
                Some(a) if a.at > self.pos => a.at,
                _ => self.buf.len(),
            };
            let fds: Vec<BorrowedFd<'_>> = match (attach_now, next) {
                (true, Some(a)) => a.fds.iter().map(|fd| fd.as_fd()).collect(),
                _ => Vec::new(),
            };
            match send_with_fds(sock, &self.buf[self.pos..stop], &fds, true) {
                Ok(n) => {
                    self.pos += n;
                    if attach_now {
                        // Sent with at least one byte: the kernel has them.
                        self.attached.pop_front();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        self.buf.clear();
        self.pos = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, ReadRequest, Received, ToHelper};
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    fn read_request(id: u64) -> ToHelper {
        ToHelper::Read(ReadRequest {
            id,
            path: "f".into(),
            known: crate::FileMeta {
                size: 4,
                mtime_secs: 0,
                mtime_nanos: 0,
                inode: 1,
                device: 1,
            },
            offset: 0,
            len: 4,
            with_descriptor: true,
            slot: None,
        })
    }

    #[test]
    fn descriptors_travel_with_their_own_frame() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let mut file = tempfile();
        file.write_all(b"abcd").expect("write");
        file.rewind().expect("rewind");
        let mut writer = FrameWriter::new();
        writer
            .push(&ToHelper::Lookup(crate::LookupRequest {
                id: 1,
                path: "x".into(),
                known: None,
            }))
            .expect("push lookup");
        let fd: OwnedFd = file.try_clone().expect("dup").into();
        writer
            .push_with_fds(&read_request(2), vec![fd])
            .expect("push read");
        assert!(
            writer.push_with_fds(&read_request(3), Vec::new()).is_err(),
            "a read without its descriptor is refused"
        );
        assert!(writer.flush(a.as_fd()).expect("flush"));

        let mut channel = Channel::new(b);
        let first: Received<ToHelper> = channel.recv().expect("recv").expect("message");
        assert!(first.fds.is_empty());
        let second: Received<ToHelper> = channel.recv().expect("recv").expect("message");
        assert_eq!(second.message, read_request(2));
        let mut got = String::new();
        std::fs::File::from(second.fds.into_iter().next().expect("descriptor"))
            .read_to_string(&mut got)
            .expect("read");
        assert_eq!(got, "abcd");
    }

    fn tempfile() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("amped-writer-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("temp file");
        let _ = std::fs::remove_file(&path);
        file
    }
}

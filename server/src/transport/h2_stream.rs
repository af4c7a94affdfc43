//! An HTTP/2 stream as a transport: the end of one stream of a shared
//! [`Session`](crate::h2::Session) that a connection of its own reads
//! and writes. The connection above reads the request the session wrote
//! for it as an HTTP/1.1 head and body, and writes its response as it
//! would to a socket; the session turns that into HEADERS and DATA
//! frames, as flow control allows, for the HTTP/2 connection to send.
//! So every subsystem (files, windows read by helpers, scripts, the
//! status page, errors) serves a stream as it serves any connection.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;

use super::Received;
use crate::conn_id::ConnId;
use crate::h2::frame::MAX_FRAME;
use crate::h2::{Read, Session};
use crate::send::{pread, shrank, Sink};

/// One HTTP/2 connection's session, shared by the connection and the
/// connections of its streams (one thread; each borrow lasts one call).
pub(crate) type SharedSession = Rc<RefCell<Session<ConnId>>>;

/// One stream of a session, as its connection's transport.
#[derive(Debug)]
pub(crate) struct StreamEnd {
    session: SharedSession,
    stream: u32,
    /// The HTTP/2 connection the stream belongs to.
    parent: ConnId,
    local: SocketAddr,
    tls: bool,
}

impl StreamEnd {
    pub(crate) fn new(
        session: SharedSession,
        stream: u32,
        parent: ConnId,
        local: SocketAddr,
        tls: bool,
    ) -> StreamEnd {
        StreamEnd {
            session,
            stream,
            parent,
            local,
            tls,
        }
    }

    pub(crate) fn parent(&self) -> ConnId {
        self.parent
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// Moves what the session holds of the request into `input`.
    pub(crate) fn read_into(&mut self, input: &mut Vec<u8>, room: usize) -> Received {
        match self.session.borrow_mut().read(self.stream, input, room) {
            Read::Bytes(n) => Received::Bytes(n),
            Read::Nothing => Received::Nothing,
            Read::End => Received::End,
        }
    }

    /// True while the session holds request bytes not yet read.
    pub(crate) fn has_input(&self) -> bool {
        self.session.borrow().has_input(self.stream)
    }

    /// True when the last write found no room in the windows or the
    /// connection's unsent frames.
    pub(crate) fn blocked(&self) -> bool {
        self.session.borrow().blocked(self.stream)
    }

    /// The response is complete: END_STREAM.
    pub(crate) fn end(&mut self) {
        self.session.borrow_mut().end(self.stream);
    }

    /// The stream's connection is closing: the session lets the stream go
    /// (resetting it when its response was cut short).
    pub(crate) fn release(&mut self) {
        self.session.borrow_mut().release(self.stream);
    }
}

impl Sink for StreamEnd {
    fn write_slices(&mut self, slices: &[IoSlice<'_>], _more: bool) -> io::Result<usize> {
        self.session.borrow_mut().write(self.stream, slices)
    }

    fn send_file(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<usize> {
        let count = count.min(MAX_FRAME as u64) as usize;
        let read = self
            .session
            .borrow_mut()
            .write_with(self.stream, count, |buf| match pread(file, buf, offset)? {
                0 => Err(shrank()),
                n => Ok(n),
            });
        read
    }

    unsafe fn write_shared(&mut self, start: *const u8, len: usize) -> io::Result<usize> {
        let len = len.min(MAX_FRAME);
        self.session
            .borrow_mut()
            .write_with(self.stream, len, |buf| {
                // SAFETY: the caller vouches that `start..start + len` is
                // mapped and readable; `buf` is at most `len` long and
                // is the session's own memory, so they do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(start, buf.as_mut_ptr(), buf.len()) };
                Ok(buf.len())
            })
    }

    fn join_segments(&mut self, _on: bool) {}
}

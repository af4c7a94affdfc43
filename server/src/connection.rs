//! One client connection: its socket, what it has sent that is not yet
//! handled, what is queued to go back, and where it is in its life.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use crate::cgi::exchange::Exchange;
use crate::event::Interest;
use crate::http::request::{Request, MAX_HEAD};
use crate::output::Output;

/// The most unhandled input buffered per connection (a full head plus
/// room for pipelined requests behind it).
pub const MAX_INPUT: usize = MAX_HEAD + 16 * 1024;

/// The most bytes asked for by one read.
const READ_CHUNK: usize = 8 * 1024;

/// Where a connection is.
#[derive(Debug)]
pub enum Phase {
    /// Reading and answering requests.
    Reading,
    /// A request waits for a helper's answer.
    Waiting(Box<Request>),
    /// A CGI script is being run for the request.
    Cgi(Box<Exchange>),
    /// The last response is queued; close once it is written.
    Closing,
    /// Written and shut down for writing; draining what the client still
    /// sends, so that closing does not reset the connection under the
    /// response.
    Lingering,
}

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub generation: u32,
    pub input: Vec<u8>,
    pub output: Output,
    pub phase: Phase,
    /// Request-body bytes still to be read and dropped.
    pub discard: u64,
    /// What the poller watches for now.
    pub interest: Interest,
    /// When the connection times out in its current state.
    pub deadline: Instant,
    /// The deadline of this connection's entry in the timer heap, if any.
    pub armed_at: Option<Instant>,
    /// When the first byte of the request being read arrived.
    pub request_started: Option<Instant>,
    /// The client shut down its side.
    pub peer_closed: bool,
    /// Responses sent on this connection.
    pub responses: u64,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, generation: u32, now: Instant) -> Connection {
        Connection {
            stream,
            peer,
            generation,
            input: Vec::new(),
            output: Output::default(),
            phase: Phase::Reading,
            discard: 0,
            interest: Interest::READABLE,
            deadline: now,
            armed_at: None,
            request_started: None,
            peer_closed: false,
            responses: 0,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Room left in the input buffer.
    pub fn input_room(&self) -> usize {
        MAX_INPUT.saturating_sub(self.input.len())
    }

    /// Reads once into the input buffer. `Ok(0)` means the client closed
    /// its side (or the buffer is full: check `input_room` first).
    pub fn read_input(&mut self, now: Instant) -> io::Result<usize> {
        let room = self.input_room().min(READ_CHUNK);
        if room == 0 {
            return Ok(0);
        }
        let filled = self.input.len();
        self.input.reserve(room);
        let spare = &mut self.input.spare_capacity_mut()[..room];
        // SAFETY: reading into the vector's spare capacity; only the bytes
        // the kernel reports as written are then marked initialised.
        let n = unsafe { libc::read(self.stream.as_raw_fd(), spare.as_mut_ptr().cast(), room) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes after `filled`.
        unsafe { self.input.set_len(filled + n) };
        if n == 0 {
            self.peer_closed = true;
        } else if filled == 0 && self.discard == 0 && matches!(self.phase, Phase::Reading) {
            // The first byte of a request head (not of a body).
            self.request_started.get_or_insert(now);
        }
        Ok(n)
    }

    /// Drops `n` handled bytes from the front of the input.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.input.len());
        self.input.drain(..n);
    }

    /// Drops request-body bytes that are already buffered.
    pub fn discard_buffered_body(&mut self) {
        if self.discard > 0 {
            let n = self.discard.min(self.input.len() as u64) as usize;
            self.consume(n);
            self.discard -= n as u64;
        }
    }
}

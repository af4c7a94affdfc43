//! The transport seam under a connection: a client's bytes in and out,
//! over plain TCP or through a TLS session ([`tls::TlsSession`], rustls
//! driven by the loop through its sans-I/O API). Everything above (the
//! HTTP parser, the output queue, the send path) reads plaintext from
//! [`Transport::read_into`] and writes to [`Transport::sink`], and never
//! knows which it has. Kernel TLS, where the kernel has it, would be a
//! third kind here: the session's keys handed to the socket after the
//! handshake, and plain `sendfile` from then on.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::send::{FdSink, Sink};

pub(crate) mod h2_stream;
pub(crate) mod tls;

pub(crate) use h2_stream::{SharedSession, StreamEnd};

pub(crate) use tls::{name_refused, TlsCounters, TlsSession, TlsStats};

/// What one read from a client produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Plaintext bytes appended to the input.
    Bytes(usize),
    /// Nothing for the layers above yet (a handshake message, a partial
    /// record); the socket is drained for now.
    Nothing,
    /// The client has closed its side.
    End,
    /// Plain HTTP arrived on a TLS port: the connection now speaks plain
    /// HTTP, so that a 400 saying so reaches the client.
    PlainOnTlsPort,
    /// The TLS session failed and its alert is on its way: nothing more
    /// is read from it; the connection lingers and closes.
    Failed,
}

/// A client connection's transport.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsSession>),
    /// One stream of an HTTP/2 connection (which has the socket).
    Stream(Box<StreamEnd>),
}

impl Transport {
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Transport::Plain(stream) => stream.as_raw_fd(),
            Transport::Tls(session) => session.fd(),
            // A stream has no descriptor of its own; nothing watches it.
            Transport::Stream(_) => -1,
        }
    }

    /// The TCP socket, unless this is an HTTP/2 stream.
    fn stream(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(stream) => Some(stream),
            Transport::Tls(session) => Some(session.stream()),
            Transport::Stream(_) => None,
        }
    }

    /// The HTTP/2 stream this transport is, if it is one.
    pub(crate) fn as_stream(&mut self) -> Option<&mut StreamEnd> {
        match self {
            Transport::Stream(end) => Some(end),
            _ => None,
        }
    }

    /// True for an HTTP/2 stream.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Transport::Stream(_))
    }

    /// The server's address on this connection.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Transport::Stream(end) => Ok(end.local_addr()),
            _ => self.stream().map_or_else(
                || Err(io::ErrorKind::NotConnected.into()),
                TcpStream::local_addr,
            ),
        }
    }

    /// True when the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            Transport::Tls(session) => !session.downgraded(),
            Transport::Stream(end) => end.is_tls(),
            Transport::Plain(_) => false,
        }
    }

    /// Reads once from the client, appending at most about `room`
    /// plaintext bytes to `input` (a TLS session also hands over what it
    /// has already decrypted, so that no plaintext waits where the
    /// poller cannot see it).
    pub(crate) fn read_into(&mut self, input: &mut Vec<u8>, room: usize) -> io::Result<Received> {
        match self {
            Transport::Plain(stream) => match read_fd(stream.as_raw_fd(), input, room)? {
                0 => Ok(Received::End),
                n => Ok(Received::Bytes(n)),
            },
            Transport::Tls(session) => session.read_into(input, room),
            Transport::Stream(end) => Ok(end.read_into(input, room)),
        }
    }

    /// Reads and drops what the client sends (while lingering). Ok(0) at
    /// its end.
    pub(crate) fn drain(&mut self) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => return (&*stream).read(&mut [0u8; 4096]),
            // Once a session reads no more, the bytes just go.
            Transport::Tls(session) if session.done_reading() => {
                return session.stream().read(&mut [0u8; 4096])
            }
            Transport::Tls(_) => {}
            Transport::Stream(_) => return Ok(0),
        }
        let mut scratch = Vec::with_capacity(4096);
        match self.read_into(&mut scratch, 4096)? {
            Received::End => Ok(0),
            Received::Nothing => Err(io::ErrorKind::WouldBlock.into()),
            Received::Bytes(n) => Ok(n),
            Received::PlainOnTlsPort | Received::Failed => Ok(1),
        }
    }

    /// Looks for the end of the client's input without taking any (the
    /// input buffer is full): Ok(0) once the client has closed.
    pub(crate) fn peek(&self) -> io::Result<usize> {
        let mut byte = [0u8; 1];
        match self.stream() {
            Some(stream) => stream.peek(&mut byte),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Where response bytes are written.
    pub(crate) fn sink(&mut self) -> TransportSink<'_> {
        match self {
            Transport::Plain(stream) => TransportSink::Plain(FdSink(stream.as_raw_fd())),
            Transport::Tls(session) => TransportSink::Tls(session),
            Transport::Stream(end) => TransportSink::Stream(end),
        }
    }

    /// Writes what a TLS session holds encrypted and unsent. Ok when it
    /// is all out or the socket is full.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) | Transport::Stream(_) => Ok(()),
            Transport::Tls(session) => session.flush_some(),
        }
    }

    /// True when bytes the layers above wrote are not yet on the socket.
    pub(crate) fn pending(&self) -> bool {
        match self {
            Transport::Plain(_) | Transport::Stream(_) => false,
            Transport::Tls(session) => session.pending(),
        }
    }

    /// Ends the sending side cleanly: a TLS session's `close_notify`,
    /// then the socket's write side.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Transport::Tls(session) => session.close_notify(),
            Transport::Stream(end) => return end.end(),
            Transport::Plain(_) => {}
        }
        if let Some(stream) = self.stream() {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
}

/// A [`Sink`] over either transport, borrowed for one write.
pub(crate) enum TransportSink<'a> {
    Plain(FdSink),
    Tls(&'a mut TlsSession),
    Stream(&'a mut StreamEnd),
}

impl TransportSink<'_> {
    /// The sink itself.
    pub(crate) fn as_dyn(&mut self) -> &mut dyn Sink {
        match self {
            TransportSink::Plain(sink) => sink,
            TransportSink::Tls(session) => &mut **session,
            TransportSink::Stream(end) => &mut **end,
        }
    }
}

/// One `read` into `input`'s spare capacity, at most `room` bytes.
pub(crate) fn read_fd(fd: RawFd, input: &mut Vec<u8>, room: usize) -> io::Result<usize> {
    let filled = input.len();
    input.reserve(room);
    let spare = &mut input.spare_capacity_mut()[..room];
    // SAFETY: reading into the vector's spare capacity; only the bytes
    // the kernel reports as written are then marked initialised.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), room) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised `n` bytes after `filled`.
    unsafe { input.set_len(filled + n) };
    Ok(n)
}

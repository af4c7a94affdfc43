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

pub(crate) mod tls;

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
}

impl Transport {
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Transport::Plain(stream) => stream.as_raw_fd(),
            Transport::Tls(session) => session.fd(),
        }
    }

    fn stream(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(session) => session.stream(),
        }
    }

    /// The server's address on this connection.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream().local_addr()
    }

    /// True when the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(session) if !session.downgraded())
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
        self.stream().peek(&mut byte)
    }

    /// Where response bytes are written.
    pub(crate) fn sink(&mut self) -> TransportSink<'_> {
        match self {
            Transport::Plain(stream) => TransportSink::Plain(FdSink(stream.as_raw_fd())),
            Transport::Tls(session) => TransportSink::Tls(session),
        }
    }

    /// Writes what a TLS session holds encrypted and unsent. Ok when it
    /// is all out or the socket is full.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(session) => session.flush_some(),
        }
    }

    /// True when bytes the layers above wrote are not yet on the socket.
    pub(crate) fn pending(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(session) => session.pending(),
        }
    }

    /// Ends the sending side cleanly: a TLS session's `close_notify`,
    /// then the socket's write side.
    pub(crate) fn shutdown_write(&mut self) {
        if let Transport::Tls(session) = self {
            session.close_notify();
        }
        let _ = self.stream().shutdown(Shutdown::Write);
    }
}

/// A [`Sink`] over either transport, borrowed for one write.
pub(crate) enum TransportSink<'a> {
    Plain(FdSink),
    Tls(&'a mut TlsSession),
}

impl TransportSink<'_> {
    /// The sink itself.
    pub(crate) fn as_dyn(&mut self) -> &mut dyn Sink {
        match self {
            TransportSink::Plain(sink) => sink,
            TransportSink::Tls(session) => &mut **session,
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

//! One TLS session on a client socket: rustls's server connection driven
//! by the loop. Ciphertext is read when the socket is readable, processed,
//! and the plaintext handed up; plaintext written by the layers above is
//! encrypted into records and written while the socket takes them, the
//! rest kept by rustls until the socket is writable again
//! ([`TlsSession::pending`]). Nothing here blocks.
//!
//! File bytes cannot go through `sendfile`: a resident window is read
//! with `pread` into a staging buffer (64 KiB, one per thread) and
//! encrypted from there; a window a helper read into a shared slot is copied out of
//! the slot by address (no Rust slice is made over memory shared with a
//! helper) and encrypted the same way.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use rustls::{HandshakeKind, ServerConfig, ServerConnection};

use super::{read_fd, Received};
use crate::send::{set_nodelay, shrank, Sink};

/// Plaintext taken per write call before the records are flushed, so that
/// rustls holds little ciphertext a full socket could not take (rustls's
/// own buffer limit, which caps a vectored write, is the same). File bytes
/// are staged this much at a time too: one `pread` per four records cost
/// about 9% less server CPU per MiB than one per record (1 MiB files,
/// wrk -c10, median of 5 rounds: 505 against 553 µs per MiB).
const TLS_CHUNK: usize = 64 << 10;

thread_local! {
    /// Where file bytes are staged before rustls encrypts them: one per
    /// thread (the loop is one thread), used only within one call, kept
    /// so that no call allocates or zeroes it again.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
/// The TLS record type of a handshake message: what a ClientHello starts
/// with.
const HANDSHAKE_RECORD: u8 = 0x16;

/// A fatal alert record in the clear (TLS 1.2 record version, as before
/// any key is agreed) with the description `description`.
const fn fatal_alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}
/// RFC 6066 3: a name the server does not recognise, refused.
const UNRECOGNIZED_NAME: u8 = 112;
/// A message that could not be read.
const DECODE_ERROR: u8 = 50;
/// Any other failure of the handshake.
const HANDSHAKE_FAILURE: u8 = 40;

thread_local! {
    /// Set by the certificate resolver when it refuses the name a client
    /// asked for (`--tls-strict-sni`), within the `process_new_packets`
    /// call under way on this thread.
    static NAME_REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Called by the certificate resolver as it refuses a client's name:
/// the handshake then fails with `unrecognized_name` (rustls itself would
/// say `access_denied`).
pub(crate) fn name_refused() {
    NAME_REFUSED.with(|refused| refused.set(true));
}

/// The server's TLS counters, for the status page.
#[derive(Debug, Default)]
pub(crate) struct TlsCounters {
    pub(crate) open: Cell<u64>,
    pub(crate) full_handshakes: Cell<u64>,
    pub(crate) resumed_handshakes: Cell<u64>,
    /// Errors by kind; see [`ErrorKind`].
    pub(crate) errors: [Cell<u64>; ErrorKind::COUNT],
}

/// The TLS counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TlsStats {
    pub(crate) open: u64,
    pub(crate) full_handshakes: u64,
    pub(crate) resumed_handshakes: u64,
    pub(crate) errors: [u64; ErrorKind::COUNT],
}

impl TlsStats {
    /// The errors with the names the status page gives them.
    pub(crate) fn named_errors(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ErrorKind::ALL
            .iter()
            .zip(self.errors)
            .map(|(kind, n)| (kind.name(), n))
    }
}

impl TlsCounters {
    pub(crate) fn stats(&self) -> TlsStats {
        TlsStats {
            open: self.open.get(),
            full_handshakes: self.full_handshakes.get(),
            resumed_handshakes: self.resumed_handshakes.get(),
            errors: std::array::from_fn(|i| self.errors[i].get()),
        }
    }

    fn add(cell: &Cell<u64>, n: i64) {
        cell.set(cell.get().saturating_add_signed(n));
    }

    fn error(&self, kind: ErrorKind) {
        Self::add(&self.errors[kind as usize], 1);
    }
}

/// How a TLS connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A record or message that does not parse (garbage, truncation).
    Decode,
    /// No protocol version, cipher suite, group or ALPN protocol in
    /// common (an old client, SSLv3, TLS 1.0 and 1.1).
    Incompatible,
    /// A client that broke the protocol's rules.
    Misbehaved,
    /// A record that did not decrypt.
    Decrypt,
    /// The client sent an alert (it refused the certificate, say).
    AlertReceived,
    /// No certificate for the name asked for (`--tls-strict-sni`).
    Certificate,
    /// Plain HTTP sent to a TLS port.
    PlainHttp,
    /// A handshake that never finished: timed out, or the client left.
    Incomplete,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub(crate) const COUNT: usize = 9;
    pub(crate) const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Decode,
        ErrorKind::Incompatible,
        ErrorKind::Misbehaved,
        ErrorKind::Decrypt,
        ErrorKind::AlertReceived,
        ErrorKind::Certificate,
        ErrorKind::PlainHttp,
        ErrorKind::Incomplete,
        ErrorKind::Other,
    ];

    /// The name the status page gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorKind::Decode => "decode",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Misbehaved => "misbehaved",
            ErrorKind::Decrypt => "decrypt",
            ErrorKind::AlertReceived => "alert_received",
            ErrorKind::Certificate => "certificate",
            ErrorKind::PlainHttp => "plain_http",
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::Other => "other",
        }
    }

    fn of(error: &rustls::Error) -> ErrorKind {
        use rustls::Error as E;
        match error {
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. } => ErrorKind::Decode,
            E::PeerIncompatible(_) | E::UnsupportedNameType => ErrorKind::Incompatible,
            E::PeerMisbehaved(_) => ErrorKind::Misbehaved,
            E::DecryptError => ErrorKind::Decrypt,
            E::AlertReceived(_) => ErrorKind::AlertReceived,
            E::General(text) if text.contains("certificate") => ErrorKind::Certificate,
            _ => ErrorKind::Other,
        }
    }
}

/// A TLS session on a client's socket.
pub(crate) struct TlsSession {
    stream: TcpStream,
    conn: ServerConnection,
    counters: Rc<TlsCounters>,
    /// The first bytes have been looked at (a ClientHello, or plain HTTP).
    probed: bool,
    /// The client spoke plain HTTP: the session is bypassed.
    downgraded: bool,
    /// The handshake is done and counted.
    established: bool,
    /// The connection failed and the failure is counted.
    failed: bool,
    /// Some record has gone to the client.
    sent_any: bool,
    /// rustls failed the session: nothing more is read through it.
    broken: bool,
    /// What rustls queued is not to be sent (an alert of amped's own
    /// went instead).
    muted: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("fd", &self.stream.as_raw_fd())
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A session on a just accepted socket, with the configuration in use
    /// now (a reload changes only later sessions).
    pub(crate) fn accept(
        stream: TcpStream,
        config: Arc<ServerConfig>,
        counters: Rc<TlsCounters>,
    ) -> io::Result<TlsSession> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        TlsCounters::add(&counters.open, 1);
        Ok(TlsSession {
            stream,
            conn,
            counters,
            probed: false,
            downgraded: false,
            established: false,
            failed: false,
            sent_any: false,
            broken: false,
            muted: false,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// True once the client turned out to speak plain HTTP.
    pub(crate) fn downgraded(&self) -> bool {
        self.downgraded
    }

    /// See [`super::Transport::read_into`].
    pub(crate) fn read_into(&mut self, input: &mut Vec<u8>, room: usize) -> io::Result<Received> {
        if self.downgraded {
            return match read_fd(self.fd(), input, room)? {
                0 => Ok(Received::End),
                n => Ok(Received::Bytes(n)),
            };
        }
        if self.broken {
            return Ok(Received::Failed);
        }
        if !self.probed {
            let mut first = [0u8; 1];
            if self.stream.peek(&mut first)? == 1 {
                self.probed = true;
                if first[0] != HANDSHAKE_RECORD && first[0].is_ascii_alphabetic() {
                    self.downgraded = true;
                    self.fail(ErrorKind::PlainHttp);
                    return Ok(Received::PlainOnTlsPort);
                }
            }
        }
        let mut at_end = false;
        if room > 0 {
            let fd = self.fd();
            match self.conn.read_tls(&mut FdIo(fd)) {
                Ok(0) => at_end = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        NAME_REFUSED.with(|refused| refused.set(false));
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(error) => {
                self.fail(ErrorKind::of(&error));
                self.broken = true;
                self.alert(&error);
                return Ok(Received::Failed);
            }
        };
        if !self.established && !self.conn.is_handshaking() {
            self.established = true;
            let counter = match self.conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => &self.counters.resumed_handshakes,
                _ => &self.counters.full_handshakes,
            };
            TlsCounters::add(counter, 1);
        }
        // Handshake replies, tickets, alerts.
        self.flush_some()?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let filled = input.len();
            input.resize(filled + available, 0);
            let n = self.conn.reader().read(&mut input[filled..]).unwrap_or(0);
            input.truncate(filled + n);
            return Ok(Received::Bytes(n));
        }
        if at_end || state.peer_has_closed() {
            // A client that closes without close_notify is no error here:
            // HTTP/1.1 frames every body it sends.
            return Ok(Received::End);
        }
        Ok(Received::Nothing)
    }

    /// Tells the client why its session failed: the alert rustls queued,
    /// if the socket takes it. Before the server has sent anything, a
    /// refused name gets `unrecognized_name` instead of rustls's
    /// `access_denied`, and an error rustls queued no alert for (a
    /// handshake message too large to buffer) gets one of its own.
    fn alert(&mut self, error: &rustls::Error) {
        let refused = NAME_REFUSED.with(|refused| refused.replace(false));
        if self.sent_any {
            let _ = self.flush_some();
            return;
        }
        let description = match error {
            _ if refused => UNRECOGNIZED_NAME,
            _ if self.conn.wants_write() => {
                let _ = self.flush_some();
                return;
            }
            // The client's own fatal alert is not answered.
            rustls::Error::AlertReceived(_) => return,
            rustls::Error::InvalidMessage(_) => DECODE_ERROR,
            _ => HANDSHAKE_FAILURE,
        };
        // Whatever rustls queued stays unsent.
        self.muted = true;
        let _ = (&self.stream).write(&fatal_alert(description));
    }

    fn fail(&mut self, kind: ErrorKind) {
        if !self.failed {
            self.failed = true;
            self.counters.error(kind);
        }
    }

    /// Writes encrypted records while the socket takes them. Ok when all
    /// are out or the socket is full.
    pub(crate) fn flush_some(&mut self) -> io::Result<()> {
        match self.flush_all() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Writes encrypted records until none is left (Ok) or the socket is
    /// full (`WouldBlock`).
    fn flush_all(&mut self) -> io::Result<()> {
        while !self.muted && self.conn.wants_write() {
            let fd = self.fd();
            match self.conn.write_tls(&mut FdIo(fd)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => self.sent_any = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// True while encrypted records wait for the socket.
    pub(crate) fn pending(&self) -> bool {
        !self.downgraded && !self.muted && self.conn.wants_write()
    }

    /// True once rustls has failed the session (its alert sent or on its
    /// way).
    pub(crate) fn broken(&self) -> bool {
        self.broken
    }

    /// Queues `close_notify` and writes it if the socket takes it.
    pub(crate) fn close_notify(&mut self) {
        if !self.downgraded && self.established && !self.broken {
            self.conn.send_close_notify();
            let _ = self.flush_some();
        }
    }

    /// Ready to take more plaintext: every earlier record is on the
    /// socket, or `WouldBlock`.
    fn ready(&mut self) -> io::Result<()> {
        self.flush_all()
    }

    /// Encrypts up to `count` bytes (at most `TLS_CHUNK`) filled into the
    /// staging buffer by `fill(buffer, done)`; returns the bytes taken.
    fn encrypt_filled(
        &mut self,
        count: usize,
        fill: impl FnMut(&mut [u8], usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.ready()?;
        STAGING.with(|staging| {
            let mut buffer = staging.borrow_mut();
            if buffer.len() < TLS_CHUNK {
                buffer.resize(TLS_CHUNK, 0);
            }
            self.encrypt_staged(&mut buffer[..TLS_CHUNK], count, fill)
        })
    }

    /// [`encrypt_filled`](Self::encrypt_filled) with its staging buffer.
    fn encrypt_staged(
        &mut self,
        buffer: &mut [u8],
        count: usize,
        mut fill: impl FnMut(&mut [u8], usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let count = count.min(buffer.len());
        let mut done = 0;
        while done < count {
            let want = count - done;
            let got = match fill(&mut buffer[..want], done) {
                Ok(0) if done == 0 => return Err(shrank()),
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            let taken = self.conn.writer().write(&buffer[..got])?;
            done += taken;
            if taken < got {
                break;
            }
        }
        self.flush_some()?;
        Ok(done)
    }
}

impl Sink for TlsSession {
    fn write_slices(&mut self, slices: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        if self.downgraded {
            return crate::send::FdSink(self.fd()).write_slices(slices, more);
        }
        self.ready()?;
        // rustls joins the pieces (a head and a small body) into records
        // without copying them first, and takes at most its buffer limit
        // (64 KiB, as TLS_CHUNK) while nothing else is buffered.
        let n = self.conn.writer().write_vectored(slices)?;
        self.flush_some()?;
        Ok(n)
    }

    fn send_file(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<usize> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.encrypt_filled(count, |buffer, done| {
            let at = (offset + done as u64) as libc::off_t;
            // SAFETY: pread into a live buffer of its length.
            let n = unsafe { libc::pread(file, buffer.as_mut_ptr().cast(), buffer.len(), at) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(n as usize)
        })
    }

    unsafe fn write_shared(&mut self, start: *const u8, len: usize) -> io::Result<usize> {
        self.encrypt_filled(len, |buffer, done| {
            // SAFETY: the caller vouches for `start..start + len`, and
            // `done + buffer.len() <= len`; the copy is by address, so no
            // slice is made over the shared memory.
            unsafe {
                std::ptr::copy_nonoverlapping(start.add(done), buffer.as_mut_ptr(), buffer.len())
            };
            Ok(buffer.len())
        })
    }

    fn join_segments(&mut self, on: bool) {
        set_nodelay(self.fd(), !on);
    }
}

impl Drop for TlsSession {
    fn drop(&mut self) {
        TlsCounters::add(&self.counters.open, -1);
        if !self.established && self.probed {
            self.fail(ErrorKind::Incomplete);
        }
    }
}

/// The socket as rustls's reader and writer.
struct FdIo(RawFd);

impl Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read into a live buffer of its length.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        crate::send::FdSink(self.0).write_slices(bufs, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

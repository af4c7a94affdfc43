//! One TLS session on a client socket: rustls's unbuffered server
//! connection driven by the loop. Ciphertext is read when the socket is
//! readable into a buffer of the session's own, processed in place, and
//! the plaintext handed up; plaintext written by the layers above is
//! sealed into records in a buffer the thread reuses and written while
//! the socket takes them, the rest held by the session until the socket
//! is writable again ([`TlsSession::pending`]). The session holds a
//! buffer only while it holds bytes (part of a record in, records out):
//! an idle one holds none, as a plain connection holds no input buffer.
//! Nothing here blocks.
//!
//! File bytes cannot go through `sendfile`: a resident window is read
//! with `pread` into a staging buffer (64 KiB, one per thread) and
//! encrypted from there; a window a helper read into a shared slot is
//! copied out of the slot by address (no Rust slice is made over memory
//! shared with a helper) and encrypted the same way.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, WriteTraffic,
};
use rustls::{HandshakeKind, ServerConfig};

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

/// The largest TLS record on the wire (rustls's bound: 16 KiB of
/// plaintext, 2 KiB of expansion, the 5-byte header).
const MAX_RECORD: usize = 16 * 1024 + 2048 + 5;
/// The most ciphertext held while a handshake message arrives in pieces
/// (rustls's bound on a handshake message, 64 KiB, and a record).
const MAX_INCOMING: usize = 0xffff + MAX_RECORD;
/// Room for the records `TLS_CHUNK` bytes of plaintext become: each of 16
/// KiB gets a header, a content type, an explicit nonce and a tag (29 bytes
/// at most with AES-GCM in TLS 1.2); 64 is ample.
const SEALED_CHUNK: usize = TLS_CHUNK + (TLS_CHUNK / (16 * 1024) + 1) * 64;

/// Spare buffers for sealed records kept by the thread.
const SPARE_SEALED: usize = 4;

thread_local! {
    /// Buffers records are sealed into, zeroed once and reused: one is
    /// taken for each seal and comes back once the socket has taken its
    /// records. While the socket has not, the session holds it as its
    /// `outgoing`, so that no record is copied again. At most
    /// `SPARE_SEALED` are kept.
    static SEALED: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer to seal records into, `SEALED_CHUNK` long.
fn sealing_buffer() -> Vec<u8> {
    let mut buffer = SEALED
        .with(|spares| spares.borrow_mut().pop())
        .unwrap_or_default();
    if buffer.len() < SEALED_CHUNK {
        buffer.resize(SEALED_CHUNK, 0);
    }
    buffer
}

/// Keeps `buffer` for the next seal, if it is one and there is room.
fn spare(buffer: Vec<u8>) {
    if buffer.capacity() >= SEALED_CHUNK {
        SEALED.with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARE_SEALED {
                spares.push(buffer);
            }
        });
    }
}

/// A TLS session on a client's socket: rustls's unbuffered server
/// connection, with the ciphertext in buffers of the session's own that
/// it holds only while they hold bytes (part of a record in, records the
/// socket has not taken out). An idle session holds neither.
pub(crate) struct TlsSession {
    stream: TcpStream,
    conn: UnbufferedServerConnection,
    counters: Rc<TlsCounters>,
    /// Ciphertext read and not yet processed: part of a record or of a
    /// handshake message.
    incoming: Vec<u8>,
    /// Records made and not yet taken by the socket.
    outgoing: Unsent,
    /// The first bytes have been looked at (a ClientHello, or plain HTTP).
    probed: bool,
    /// The client spoke plain HTTP: the session is bypassed.
    downgraded: bool,
    /// The handshake is done and counted.
    established: bool,
    /// Some record has gone to the client.
    sent_any: bool,
    /// rustls failed the session: nothing more is read through it.
    broken: bool,
    /// The client sent `close_notify`.
    peer_closed: bool,
    /// The server sent `close_notify`: nothing more is read through the
    /// session.
    closed: bool,
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
        let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        TlsCounters::add(&counters.open, 1);
        Ok(TlsSession {
            stream,
            conn,
            counters,
            incoming: Vec::new(),
            outgoing: Unsent::default(),
            probed: false,
            downgraded: false,
            established: false,
            sent_any: false,
            broken: false,
            peer_closed: false,
            closed: false,
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
        if self.peer_closed {
            // Records after close_notify are not read.
            self.incoming = Vec::new();
            return Ok(Received::End);
        }
        if !self.probed {
            let mut first = [0u8; 1];
            if self.stream.peek(&mut first)? == 1 {
                self.probed = true;
                if first[0] != HANDSHAKE_RECORD && first[0].is_ascii_alphabetic() {
                    self.downgraded = true;
                    self.counters.error(ErrorKind::PlainHttp);
                    return Ok(Received::PlainOnTlsPort);
                }
            }
        }
        let mut at_end = false;
        if room > 0 {
            if self.incoming.len() >= MAX_INCOMING {
                // A handshake message larger than rustls takes.
                let error =
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge);
                return Ok(self.failed_with(&error));
            }
            let want = MAX_RECORD.min(MAX_INCOMING - self.incoming.len());
            let read = read_fd(self.fd(), &mut self.incoming, want);
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            at_end = read? == 0;
        }
        NAME_REFUSED.with(|refused| refused.set(false));
        let filled = input.len();
        if let Err(error) = self.process(input) {
            input.truncate(filled);
            return Ok(self.failed_with(&error));
        }
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
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
        match input.len() - filled {
            0 if at_end || self.peer_closed => {
                // A client that closes without close_notify is no error
                // here: HTTP/1.1 frames every body it sends.
                Ok(Received::End)
            }
            0 => Ok(Received::Nothing),
            n => Ok(Received::Bytes(n)),
        }
    }

    /// Processes the ciphertext received: decrypted application data is
    /// appended to `input`, handshake records to `outgoing`.
    fn process(&mut self, input: &mut Vec<u8>) -> Result<(), rustls::Error> {
        loop {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let mut discard = status.discard;
            let more = match status.state {
                Err(error) => Err(error),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut read = Ok(true);
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                input.extend_from_slice(record.payload);
                            }
                            Err(error) => {
                                read = Err(error);
                                break;
                            }
                        }
                    }
                    read
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    self.outgoing.encode(&mut encode);
                    Ok(true)
                }
                // The records are in `outgoing`, which keeps them in order
                // until the socket takes them.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(true)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(true)
                }
                Ok(ConnectionState::Closed) => {
                    self.peer_closed = true;
                    Ok(false)
                }
                // More input needed, or all of it read; early data is not
                // accepted (`max_early_data_size` is 0).
                Ok(_) => Ok(false),
            };
            self.incoming.drain(..discard.min(self.incoming.len()));
            if !more? {
                return Ok(());
            }
        }
    }

    /// Counts and answers a failure; nothing more is read through the
    /// session.
    fn failed_with(&mut self, error: &rustls::Error) -> Received {
        self.counters.error(ErrorKind::of(error));
        self.broken = true;
        self.alert(error);
        self.incoming = Vec::new();
        Received::Failed
    }

    /// Tells the client why its session failed: the alert rustls queued,
    /// if the socket takes it. Before the server has sent anything, a
    /// refused name gets `unrecognized_name` instead of rustls's
    /// `access_denied`, and an error rustls queued no alert for (a
    /// handshake message too large to buffer) gets one of its own.
    fn alert(&mut self, error: &rustls::Error) {
        let refused = NAME_REFUSED.with(|refused| refused.replace(false));
        if !refused {
            self.take_queued_alert();
        }
        if self.sent_any || (!refused && !self.outgoing.is_empty()) {
            let _ = self.flush_some();
            return;
        }
        let description = match error {
            _ if refused => UNRECOGNIZED_NAME,
            // The client's own fatal alert is not answered.
            rustls::Error::AlertReceived(_) => return,
            rustls::Error::InvalidMessage(_) => DECODE_ERROR,
            _ => HANDSHAKE_FAILURE,
        };
        // Whatever rustls queued stays unsent (and nothing more is
        // queued: the session is broken).
        self.outgoing.clear();
        let _ = (&self.stream).write(&fatal_alert(description));
    }

    /// Moves what rustls queued as it failed the session (its alert, and
    /// any record of the same flight before it) into `outgoing`. rustls
    /// hands back a queued record before it would look at the ciphertext
    /// again, so asking only while one is queued never reads the bad
    /// record twice.
    fn take_queued_alert(&mut self) {
        while self.conn.wants_write() {
            match self.conn.process_tls_records(&mut self.incoming).state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => self.outgoing.encode(&mut encode),
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }

    /// Writes records while the socket takes them. Ok when all are out or
    /// the socket is full.
    pub(crate) fn flush_some(&mut self) -> io::Result<()> {
        match self.flush_all() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Writes records until none is left (Ok; the buffer is let go) or
    /// the socket is full (`WouldBlock`).
    fn flush_all(&mut self) -> io::Result<()> {
        while !self.outgoing.is_empty() {
            match write_fd(self.fd(), self.outgoing.bytes()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.outgoing.taken(n);
                    self.sent_any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// True while records wait for the socket.
    pub(crate) fn pending(&self) -> bool {
        !self.downgraded && !self.outgoing.is_empty()
    }

    /// True once nothing more is to be read through the session: rustls
    /// failed it (its alert sent or on its way), or either side sent
    /// `close_notify`. What the client still sends is read and dropped.
    pub(crate) fn done_reading(&self) -> bool {
        self.broken || self.closed || self.peer_closed
    }

    /// Queues `close_notify` and writes it if the socket takes it.
    pub(crate) fn close_notify(&mut self) {
        if !self.downgraded && self.established && !self.broken && !self.closed {
            self.closed = true;
            let _ = self.seal_with(|traffic, out| traffic.queue_close_notify(out));
        }
    }

    /// Seals what `seal` writes with the session's keys into one of the
    /// thread's `SEALED` buffers and writes it, keeping what the socket
    /// does not take. Handshake records rustls still has (tickets) go
    /// first.
    fn seal_with(
        &mut self,
        seal: impl FnOnce(
            &mut WriteTraffic<'_, ServerConnectionData>,
            &mut [u8],
        ) -> Result<usize, EncryptError>,
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("the TLS session failed"));
        }
        let (sealed, n) = loop {
            // The ciphertext still held is part of a record (`process` took
            // every whole one): rustls reads none of it here, but it
            // remembers how far into it a handshake message reached.
            let status = self.conn.process_tls_records(&mut self.incoming);
            if status.discard > 0 {
                return Err(io::Error::other("TLS records arrived unread"));
            }
            match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let mut sealed = sealing_buffer();
                    match seal(&mut traffic, &mut sealed) {
                        Ok(n) => break (sealed, n),
                        Err(e) => {
                            spare(sealed);
                            return Err(io::Error::other(e));
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => self.outgoing.encode(&mut encode),
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                Ok(ConnectionState::PeerClosed) => self.peer_closed = true,
                Ok(other) => {
                    let state = format!("{other:?}");
                    return Err(io::Error::other(format!("TLS cannot send now: {state}")));
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        };
        // The records go after whatever waits (handshake records rustls
        // had); when nothing waits, the sealing buffer itself is what
        // waits, so that what the socket does not take is not copied.
        match self.outgoing.is_empty() {
            true => self.outgoing.hold(sealed, 0, n),
            false => {
                self.outgoing.push(&sealed[..n]);
                spare(sealed);
            }
        }
        self.flush_some()
    }

    /// Encrypts `plaintext` (at most `TLS_CHUNK` bytes) and writes it.
    fn encrypt(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.seal_with(|traffic, out| traffic.encrypt(plaintext, out))
    }

    /// Encrypts up to `count` bytes (at most `TLS_CHUNK`) filled into the
    /// staging buffer by `fill(buffer, done)`; returns the bytes taken.
    fn encrypt_filled(
        &mut self,
        count: usize,
        fill: impl FnMut(&mut [u8], usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        // Ready for more only once every earlier record is out.
        self.flush_all()?;
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
        let mut got = 0;
        while got < count {
            match fill(&mut buffer[got..count], got) {
                Ok(0) if got == 0 => return Err(shrank()),
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            }
        }
        self.encrypt(&buffer[..got])?;
        Ok(got)
    }
}

/// Records made and not yet taken by the socket: `buffer[start..end]`.
/// It holds no buffer once they are all taken (a sealing buffer goes back
/// to the thread's spares).
#[derive(Debug, Default)]
struct Unsent {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl Unsent {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn bytes(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// The socket took `n` more bytes.
    fn taken(&mut self, n: usize) {
        self.start += n;
        if self.is_empty() {
            self.clear();
        }
    }

    /// Lets the buffer go.
    fn clear(&mut self) {
        spare(std::mem::take(&mut self.buffer));
        (self.start, self.end) = (0, 0);
    }

    /// Holds `buffer[start..end]` (nothing else is held).
    fn hold(&mut self, buffer: Vec<u8>, start: usize, end: usize) {
        self.clear();
        (self.buffer, self.start, self.end) = (buffer, start, end);
    }

    /// Room for `n` more bytes at the end.
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.buffer.len() < self.end + n {
            self.buffer.resize(self.end + n, 0);
        }
        &mut self.buffer[self.end..self.end + n]
    }

    /// Appends `bytes`.
    fn push(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Appends the handshake record rustls made.
    fn encode(&mut self, encode: &mut EncodeTlsData<'_, ServerConnectionData>) {
        let mut want = MAX_RECORD;
        loop {
            match encode.encode(self.room(want)) {
                Ok(n) => {
                    self.end += n;
                    return;
                }
                Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    want = required_size
                }
                Err(EncodeError::AlreadyEncoded) => return,
            }
        }
    }
}

/// Writes what the socket takes of `bytes` now.
fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: write from a live buffer of its length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

impl Sink for TlsSession {
    fn write_slices(&mut self, slices: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        if self.downgraded {
            return crate::send::FdSink(self.fd()).write_slices(slices, more);
        }
        // Ready for more only once every earlier record is out.
        self.flush_all()?;
        // One piece is encrypted as it is; several (a head and a small
        // body) are joined first, so that they leave in one record.
        if let [one] = slices {
            let n = one.len().min(TLS_CHUNK);
            self.encrypt(&one[..n])?;
            return Ok(n);
        }
        STAGING.with(|staging| {
            let mut buffer = staging.borrow_mut();
            buffer.clear();
            for slice in slices {
                let room = TLS_CHUNK - buffer.len();
                buffer.extend_from_slice(&slice[..slice.len().min(room)]);
                if buffer.len() == TLS_CHUNK {
                    break;
                }
            }
            self.encrypt(&buffer)?;
            Ok(buffer.len())
        })
    }

    fn send_file(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<usize> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.encrypt_filled(count, |buffer, done| {
            crate::send::pread(file, buffer, offset + done as u64)
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
        // A failure already counted (plain HTTP, a broken session) is
        // not counted again as an unfinished handshake.
        if self.probed && !self.established && !self.broken && !self.downgraded {
            self.counters.error(ErrorKind::Incomplete);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    /// A server configuration and a client one that trusts it, for
    /// `localhost`.
    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params.signed_by(&key, &ca).expect("certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Moves records both ways until `done` holds for the session and
    /// the client (within a deadline).
    fn exchange(
        session: &mut TlsSession,
        input: &mut Vec<u8>,
        client: &mut ClientConnection,
        socket: &mut TcpStream,
        done: impl Fn(&TlsSession, &[u8], &ClientConnection) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(session, input, client) {
            assert!(Instant::now() < deadline, "the exchange did not finish");
            while client.wants_write() {
                client.write_tls(socket).expect("client writes");
            }
            match session.read_into(input, 4096) {
                Ok(Received::Failed) => panic!("the session failed"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("server read: {e}"),
            }
            session.flush_some().expect("server flush");
            match client.read_tls(socket) {
                Ok(_) => {
                    client.process_new_packets().expect("client processes");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
    }

    #[test]
    fn an_idle_session_holds_no_buffer() {
        let (server_config, client_config) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut socket = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        socket.set_nonblocking(true).expect("non-blocking");
        let (accepted, _) = listener.accept().expect("accept");
        accepted.set_nonblocking(true).expect("non-blocking");
        let mut session =
            TlsSession::accept(accepted, server_config, Rc::default()).expect("session");
        let name = "localhost".try_into().expect("name");
        let mut client = ClientConnection::new(client_config, name).expect("client");
        let mut input = Vec::new();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .expect("request");
        exchange(
            &mut session,
            &mut input,
            &mut client,
            &mut socket,
            |s, input, _| s.established && !input.is_empty(),
        );
        assert_eq!(input, b"GET / HTTP/1.1\r\n\r\n");
        let body = vec![7u8; 100_000];
        let mut sent = 0;
        let mut answer = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while answer.len() < body.len() {
            assert!(Instant::now() < deadline, "the answer did not arrive");
            if sent < body.len() {
                match session.write_slices(&[IoSlice::new(&body[sent..])], false) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("server write: {e}"),
                }
            }
            session.flush_some().expect("server flush");
            match client.read_tls(&mut socket) {
                Ok(_) => {
                    let state = client.process_new_packets().expect("client processes");
                    let mut plain = vec![0u8; state.plaintext_bytes_to_read()];
                    client.reader().read_exact(&mut plain).expect("plaintext");
                    answer.extend_from_slice(&plain);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
        assert!(answer == body, "the answer arrived whole");
        assert!(!session.pending(), "everything was sent");
        assert_eq!(session.incoming.capacity(), 0, "no ciphertext buffer in");
        assert_eq!(
            session.outgoing.buffer.capacity(),
            0,
            "no ciphertext buffer out"
        );
    }
}

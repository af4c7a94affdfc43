//! One client connection: its socket, what it has sent that is not yet
//! handled, what is queued to go back, and where it is in its life.
//!
//! The fields are private: a connection changes state only through the
//! transitions below (`await_helper`, `begin_cgi`, `close_after_reply`,
//! `start_lingering`, ...), and what it waits for next is a pure function
//! of its state (`State::wants` in `state.rs`), checked without sockets
//! by the unit tests there.
//!
//! An idle connection holds nothing beyond its slot in the table: its
//! input buffer is lent by the loop (`buffers.rs`) while it has unhandled
//! bytes and given back at the end of the turn that empties it
//! ([`Connection::rearm`]), and a written-out output queue frees its
//! storage (`output/`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::cgi::exchange::Exchange;
use crate::conn_id::ConnId;
use crate::event::{Interest, Poller};
use crate::h2::frame::PREFACE;
use crate::http::head_writer::Stamp;
use crate::http::keep_alive::{self, Limits};
use crate::http::parse::parse;
use crate::http::request::{LogFields, Parsed, Request, MAX_HEAD};
use crate::output::Output;
use crate::respond::{self, Reply};
use crate::send::PlanWindows;
use crate::token::EventToken;
use crate::transport::{Received, SharedSession, Transport, TransportSink};

mod buffers;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use buffers::InputBuffers;
use buffers::READ_CHUNK;
pub(crate) use state::{DueCheck, Timeouts};
use state::{Phase, State, Wants};

/// Stop taking pipelined requests (and reading a script's output) while
/// this much output is queued.
pub(crate) const OUTPUT_HIGH_WATER: u64 = 256 * 1024;
/// Bytes written to one connection per turn, so that one fast reader of
/// a large file does not starve the others.
pub(crate) const WRITE_BUDGET: u64 = 256 << 10;
/// The keep-alive limits of an HTTP/2 stream's connection.
const ONE_REQUEST: Limits = Limits {
    requests: 1,
    time: None,
};
/// How long a closing connection drains what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// A client connection.
#[derive(Debug)]
pub(crate) struct Connection {
    transport: Transport,
    peer: SocketAddr,
    id: ConnId,
    state: State,
    /// The HTTP/2 session, once the connection speaks HTTP/2: its streams
    /// are connections of their own (`Transport::Stream`).
    h2: Option<Box<H2Link>>,
}

/// An HTTP/2 connection's session, and the server's address its streams
/// report (asked once: it is a system call).
#[derive(Debug)]
struct H2Link {
    session: SharedSession,
    local: SocketAddr,
}

/// What the input buffer holds next.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// No whole request head (or the connection is busy).
    Nothing,
    /// A head may be there, but too much output is queued to answer it.
    OutputFull,
    /// A request to serve (its head is consumed).
    Request(Request),
    /// A request refused: the error page is queued.
    Refused(Reply, Option<LogFields>),
    /// The client opened with the HTTP/2 preface: the connection is to
    /// speak HTTP/2 from here ([`Connection::start_h2`]).
    Http2,
}

/// The parts of a connection a running CGI exchange works on at once.
pub(crate) struct ExchangeParts<'a> {
    pub(crate) exchange: &'a mut Exchange,
    pub(crate) input: &'a mut Vec<u8>,
    pub(crate) output: &'a mut Output,
    /// Where the output goes to the client.
    pub(crate) sink: TransportSink<'a>,
    /// The client has shut down its side: no more body will come.
    pub(crate) peer_closed: bool,
}

impl Connection {
    /// A connection accepted at `opened`; its first head is due by
    /// `deadline`.
    pub(crate) fn new(
        transport: Transport,
        peer: SocketAddr,
        id: ConnId,
        opened: Instant,
        deadline: Instant,
    ) -> Self {
        Connection {
            transport,
            peer,
            id,
            state: State::new(opened, deadline),
            h2: None,
        }
    }

    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.transport.fd()
    }

    /// The server's address on this connection.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    /// True for an HTTP/2 stream's connection.
    pub(crate) fn is_stream(&self) -> bool {
        self.transport.is_stream()
    }

    /// True when the connection is encrypted (HTTPS).
    pub(crate) fn is_tls(&self) -> bool {
        self.transport.is_tls()
    }

    /// The HTTP/2 session this connection speaks, if it does.
    pub(crate) fn h2(&self) -> Option<&SharedSession> {
        self.h2.as_ref().map(|link| &link.session)
    }

    /// The server's address on an HTTP/2 connection, for its streams.
    pub(crate) fn h2_local_addr(&self) -> Option<SocketAddr> {
        self.h2.as_ref().map(|link| link.local)
    }

    /// From now on the connection speaks HTTP/2 with this session; what
    /// it has read is the session's.
    pub(crate) fn start_h2(&mut self, session: SharedSession) -> io::Result<()> {
        let local = self.transport.local_addr()?;
        self.h2 = Some(Box::new(H2Link { session, local }));
        self.state.speaks_h2 = true;
        Ok(())
    }

    /// Hands what was read to the HTTP/2 session, unless it has so much
    /// unsent that the client must read first.
    pub(crate) fn feed_h2(&mut self) {
        let Some(link) = &self.h2 else {
            return;
        };
        let mut session = link.session.borrow_mut();
        self.state.h2_input_waits = session.output_full() && !self.state.input.is_empty();
        if session.output_full() || self.state.input.is_empty() {
            return;
        }
        let used = session.receive(&self.state.input);
        self.state.input.drain(..used.min(self.state.input.len()));
        if self.state.input.is_empty() {
            self.state.request_started = None;
        }
    }

    /// An HTTP/2 connection opened a stream at `now`: its idle timeout
    /// starts again.
    pub(crate) fn h2_stream_opened(&mut self, now: Instant) {
        self.state.last_stream_at = Some(now);
    }

    /// The HTTP/2 connection's streams so far and its age, against the
    /// keep-alive limits (`--keepalive-requests`, `--keepalive-time`).
    pub(crate) fn h2_within_limits(&self, streams: u64, now: Instant, limits: &Limits) -> bool {
        let age = now.saturating_duration_since(self.state.opened);
        keep_alive::within_limits(true, streams, age, limits)
    }

    /// True when input waited for the session's unsent frames, and they
    /// have room now: the connection should take its turn again.
    pub(crate) fn h2_input_can_go(&self) -> bool {
        self.state.h2_input_waits && self.h2().is_some_and(|s| !s.borrow().output_full())
    }

    /// The HTTP/2 connection this stream belongs to, for a stream.
    pub(crate) fn h2_parent(&mut self) -> Option<ConnId> {
        self.transport.as_stream().map(|end| end.parent())
    }

    /// True for a stream whose session holds request bytes it has not
    /// read yet, and room to read them.
    pub(crate) fn stream_has_input(&mut self) -> bool {
        let room = self.state.input_room() > 0;
        room && self
            .transport
            .as_stream()
            .is_some_and(|end| end.has_input())
    }

    /// True for a stream with output left that can go now (it stopped at
    /// its write budget, not for a window, the disk or memory).
    pub(crate) fn writes_on(&mut self) -> bool {
        let out = &self.state.output;
        let more = !out.is_empty() && !out.waits_for_disk() && !out.waits_for_memory();
        more && self.transport.as_stream().is_some_and(|end| !end.blocked())
    }

    /// A stream's connection is going: the session lets the stream go.
    pub(crate) fn release_stream(&mut self) {
        if let Some(end) = self.transport.as_stream() {
            end.release();
        }
    }

    pub(crate) fn output(&mut self) -> &mut Output {
        &mut self.state.output
    }

    /// True when nothing is queued to go out.
    pub(crate) fn flushed(&self) -> bool {
        self.state.output.is_empty() && !self.transport.pending()
    }

    /// True when no input waits to be handled.
    pub(crate) fn input_is_empty(&self) -> bool {
        self.state.input.is_empty()
    }

    // ----- reading ---------------------------------------------------

    /// Handles readability: drains a lingering connection, checks a full
    /// buffer for a hang-up, or reads into the input buffer (one from
    /// `buffers` when the connection holds none). False when
    /// the connection is over: an error, a reset, or end-of-file while
    /// lingering. End-of-file anywhere else is a half-close: the client
    /// sends nothing more, so reading stops (`State::wants` no longer asks
    /// for it), but every request it sent is still answered, in order,
    /// before the connection closes.
    ///
    /// A half-closed socket is not watched for reading, so readiness
    /// reported on it then is a hang-up or an error (poll and epoll always
    /// report those): the client reset the connection after its FIN, which
    /// a read would not show (it returns end-of-file again). It is over.
    /// select reports neither; there the next write fails and closes it.
    pub(crate) fn on_readable(&mut self, now: Instant, buffers: &mut InputBuffers) -> bool {
        let stream = self.transport.is_stream();
        if self.state.peer_closed && !matches!(self.state.phase, Phase::Lingering) && !stream {
            return false;
        }
        match self.read_some(now, buffers) {
            Ok(0) => !self.lingered_out(),
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }

    fn read_some(&mut self, now: Instant, buffers: &mut InputBuffers) -> io::Result<usize> {
        if matches!(self.state.phase, Phase::Lingering) {
            let n = self.transport.drain()?;
            self.state.peer_closed |= n == 0;
            return Ok(n);
        }
        if self.state.input_room() == 0 {
            let n = self.transport.peek()?;
            self.state.peer_closed |= n == 0;
            return Ok(n);
        }
        self.read_input(now, buffers)
    }

    /// Reads once into the input buffer, borrowing one from `buffers` if
    /// the connection holds none.
    fn read_input(&mut self, now: Instant, buffers: &mut InputBuffers) -> io::Result<usize> {
        let state = &mut self.state;
        if state.input.capacity() == 0 {
            state.input = buffers.take();
        }
        let room = state.input_room().min(READ_CHUNK);
        let filled = state.input.len();
        let n = match self.transport.read_into(&mut state.input, room)? {
            Received::Bytes(n) => n,
            Received::Nothing => return Err(io::ErrorKind::WouldBlock.into()),
            Received::End => {
                state.peer_closed = true;
                return Ok(0);
            }
            Received::PlainOnTlsPort => {
                state.plain_on_tls = true;
                return Ok(1);
            }
            // Between requests, the connection lingers so that the alert
            // is not lost to a reset; in the middle of one, it closes.
            Received::Failed if matches!(state.phase, Phase::Reading) => {
                state.phase = Phase::Closing;
                state.input.clear();
                return Ok(1);
            }
            Received::Failed if matches!(state.phase, Phase::Closing) => {
                return Err(io::ErrorKind::WouldBlock.into())
            }
            Received::Failed => return Err(io::ErrorKind::InvalidData.into()),
        };
        if filled == 0 && state.discard == 0 && matches!(state.phase, Phase::Reading) {
            // The first byte of a request head (not of a body).
            state.request_started.get_or_insert(now);
        }
        Ok(n)
    }

    /// The client has closed its side while the connection lingers: the
    /// close is done.
    fn lingered_out(&self) -> bool {
        self.state.peer_closed && matches!(self.state.phase, Phase::Lingering)
    }

    /// Takes the next request from the input, once the body of the last
    /// one is dropped. A refused one is answered here. `want_log` asks
    /// for the fields the access log needs; `limits` may rule out keeping
    /// the connection after this request.
    pub(crate) fn next_request(
        &mut self,
        now: Instant,
        stamp: Stamp<'_>,
        want_log: bool,
        limits: &Limits,
    ) -> Incoming {
        let full = self.output_full();
        let state = &mut self.state;
        if !matches!(state.phase, Phase::Reading) {
            return Incoming::Nothing;
        }
        if std::mem::take(&mut state.plain_on_tls) {
            let reply =
                respond::plain_http_to_tls_port(&mut state.output, Stamp::plain(stamp.date));
            return Incoming::Refused(reply, None);
        }
        if state.discard > 0 {
            let n = state.discard.min(state.input.len() as u64) as usize;
            state.input.drain(..n);
            state.discard -= n as u64;
        }
        if state.discard > 0 || state.input.is_empty() {
            return Incoming::Nothing;
        }
        // The header timeout runs from the first byte of a head, even
        // one that arrived behind an earlier request.
        state.request_started.get_or_insert(now);
        if full {
            return Incoming::OutputFull;
        }
        if state.requests == 0 && !self.transport.is_stream() {
            let n = state.input.len().min(PREFACE.len());
            if state.input[..n] == PREFACE[..n] {
                return match n == PREFACE.len() {
                    true => Incoming::Http2,
                    false => Incoming::Nothing,
                };
            }
        }
        if !state.head_scan.ready(&state.input, MAX_HEAD) {
            return Incoming::Nothing;
        }
        let parsed = parse(&state.input, want_log);
        if matches!(parsed, Parsed::Partial) {
            return Incoming::Nothing;
        }
        state.requests += 1;
        let (number, age) = (state.requests, now.saturating_duration_since(state.opened));
        // A stream carries one request (refused or not): its end is
        // END_STREAM.
        let limits = match self.transport.is_stream() {
            true => &ONE_REQUEST,
            false => limits,
        };
        let within_limits = |kept| keep_alive::within_limits(kept, number, age, limits);
        let (head_len, discard, incoming) = match parsed {
            Parsed::Partial => return Incoming::Nothing,
            Parsed::Rejected(mut rejection) => {
                rejection.keep_alive = within_limits(rejection.keep_alive);
                let reply = respond::reject(&mut state.output, &rejection, stamp);
                let head_len = match rejection.head_len {
                    0 => state.input.len(),
                    n => n,
                };
                let discard = rejection.body.known_length();
                (head_len, discard, Incoming::Refused(reply, rejection.log))
            }
            Parsed::Request(mut request) => {
                request.keep_alive = within_limits(request.keep_alive);
                if self.transport.is_stream() {
                    request.http2 = true;
                    if let Some(log) = request.log.as_mut() {
                        if let Some(line) = log.request_line.strip_suffix("HTTP/1.1") {
                            log.request_line = format!("{line}HTTP/2.0");
                        }
                    }
                }
                // A CGI request's body is read by its exchange.
                let discard = match request.cgi {
                    Some(_) => 0,
                    None => request.body.known_length(),
                };
                (request.head_len, discard, Incoming::Request(request))
            }
        };
        state.input.drain(..head_len.min(state.input.len()));
        state.head_scan.reset();
        state.request_started = None;
        state.discard = discard;
        incoming
    }

    /// True when so much output is queued that pipelined requests wait.
    fn output_full(&self) -> bool {
        self.state.output.queued() > OUTPUT_HIGH_WATER
    }

    // ----- transitions -----------------------------------------------

    /// True while requests are being read and answered.
    pub(crate) fn is_reading(&self) -> bool {
        matches!(self.state.phase, Phase::Reading)
    }

    /// True when nothing is in flight (for closing while draining).
    pub(crate) fn is_idle(&self) -> bool {
        let streams_idle = self.h2().is_none_or(|s| s.borrow().is_quiet());
        matches!(self.state.phase, Phase::Reading | Phase::Lingering)
            && self.state.output.is_empty()
            && !self.transport.pending()
            && self.state.input.is_empty()
            && streams_idle
            && !self.transport.is_stream()
    }

    /// The request now waits for a helper's answer.
    pub(crate) fn await_helper(&mut self, request: Request) {
        self.state.phase = Phase::Waiting(Box::new(request));
    }

    /// The request waiting for a helper, if any; reading resumes.
    pub(crate) fn take_waiting(&mut self) -> Option<Box<Request>> {
        if !matches!(self.state.phase, Phase::Waiting(_)) {
            return None;
        }
        match std::mem::replace(&mut self.state.phase, Phase::Reading) {
            Phase::Waiting(request) => Some(request),
            _ => None,
        }
    }

    /// A CGI exchange begins for the request.
    pub(crate) fn begin_cgi(&mut self, exchange: Box<Exchange>) {
        self.state.phase = Phase::Cgi(exchange);
    }

    /// The running CGI exchange, if any.
    pub(crate) fn exchange(&mut self) -> Option<&mut Exchange> {
        match &mut self.state.phase {
            Phase::Cgi(ex) => Some(ex),
            _ => None,
        }
    }

    /// The running exchange with the input and output it moves bytes
    /// between.
    pub(crate) fn exchange_parts(&mut self) -> Option<ExchangeParts<'_>> {
        let State {
            phase,
            input,
            output,
            peer_closed,
            ..
        } = &mut self.state;
        match phase {
            Phase::Cgi(exchange) => Some(ExchangeParts {
                exchange,
                input,
                output,
                sink: self.transport.sink(),
                peer_closed: *peer_closed,
            }),
            _ => None,
        }
    }

    /// Ends the CGI exchange, if any: reading resumes, after dropping the
    /// rest of the request body when the connection is to be kept.
    pub(crate) fn end_cgi(&mut self) -> Option<Box<Exchange>> {
        if !matches!(self.state.phase, Phase::Cgi(_)) {
            return None;
        }
        let Phase::Cgi(ex) = std::mem::replace(&mut self.state.phase, Phase::Reading) else {
            return None;
        };
        if ex.keep_alive && !ex.body_complete() {
            self.state.discard = ex.body_left;
        }
        self.state.request_started = None;
        Some(ex)
    }

    /// Drops what is left of a request body that was never read, so that
    /// the next request on the connection can be read.
    pub(crate) fn discard_body(&mut self, bytes: u64) {
        self.state.discard = bytes;
    }

    /// A response was queued; `keep` says whether the connection stays.
    pub(crate) fn replied(&mut self, keep: bool) {
        self.state.responses += 1;
        if !keep {
            self.close_after_reply();
        }
    }

    /// The last response is queued: close once it is written.
    pub(crate) fn close_after_reply(&mut self) {
        self.state.phase = Phase::Closing;
    }

    /// Shuts down writing and drains what the client still sends, so that
    /// closing does not reset the connection under the response. Returns
    /// what to wait for then.
    fn start_lingering(&mut self, now: Instant) -> (Interest, Instant) {
        self.transport.shutdown_write();
        self.state.phase = Phase::Lingering;
        self.state.input.clear();
        (Interest::READABLE, now + LINGER)
    }

    // ----- writing and waiting ---------------------------------------

    /// Writes what is queued, as much as the socket and this turn's
    /// budget allow; `planner` plans file windows as they are needed.
    /// An error means the connection is over.
    pub(crate) fn write_output(&mut self, planner: &mut dyn PlanWindows) -> io::Result<()> {
        if !self.state.output.is_empty() {
            let mut sink = self.transport.sink();
            self.state
                .output
                .write_to(sink.as_dyn(), WRITE_BUDGET, planner)?;
        }
        let mut frames_pending = false;
        if let Some(link) = &self.h2 {
            let mut session = link.session.borrow_mut();
            write_frames(&mut session, self.transport.sink().as_dyn())?;
            frames_pending = !session.unsent().is_empty();
            self.state.holds_streams = !session.is_idle();
        }
        self.transport.flush()?;
        self.state.transport_pending = self.transport.pending() || frames_pending;
        Ok(())
    }

    /// Ends the connection's turn (after
    /// [`write_output`](Self::write_output)): gives an emptied input
    /// buffer back to `buffers` and has the poller watch for what the
    /// connection waits for next. Returns its deadline, or `None` when
    /// the connection is to be closed.
    pub(crate) fn rearm(
        &mut self,
        now: Instant,
        timeouts: &Timeouts,
        poller: &mut dyn Poller,
        buffers: &mut InputBuffers,
    ) -> Option<Instant> {
        self.state.note_discard(now);
        let wants = self.state.wants(now, timeouts);
        if self.transport.is_stream() {
            // A stream's response is written: END_STREAM ends it (a
            // stream has no socket to linger on, nor a poller to watch).
            return match wants {
                Wants::Wait(_, deadline) => Some(deadline),
                Wants::Linger | Wants::Close if matches!(self.state.phase, Phase::Closing) => {
                    self.transport.shutdown_write();
                    None
                }
                Wants::Linger | Wants::Close => None,
            };
        }
        let (interest, deadline) = match wants {
            Wants::Close => return None,
            Wants::Linger => self.start_lingering(now),
            Wants::Wait(interest, deadline) => (interest, deadline),
        };
        if self.state.input.is_empty() && self.state.input.capacity() > 0 {
            buffers.give_back(std::mem::take(&mut self.state.input));
        }
        if interest != self.state.interest {
            let token = EventToken::Client(self.id.slot()).to_token();
            poller.reregister(self.fd(), token, interest).ok()?;
            self.state.interest = interest;
        }
        Some(deadline)
    }

    /// True while a request waits for a helper.
    /// True while the front window waits for room in the window budget.
    pub(crate) fn waits_for_memory(&self) -> bool {
        self.state.output.waits_for_memory()
    }

    pub(crate) fn waits_for_helper(&self) -> bool {
        matches!(self.state.phase, Phase::Waiting(_))
    }

    /// True while a CGI exchange runs.
    pub(crate) fn runs_cgi(&self) -> bool {
        matches!(self.state.phase, Phase::Cgi(_))
    }

    /// True when a script's deadline is what passed (nothing queued).
    pub(crate) fn cgi_due(&self) -> bool {
        matches!(self.state.phase, Phase::Cgi(_)) && self.state.output.is_empty()
    }

    /// Sets the connection's deadline. True when a timer must be armed
    /// for it (none is armed, or only a later one).
    pub(crate) fn set_deadline(&mut self, at: Instant) -> bool {
        let state = &mut self.state;
        state.deadline = at;
        if state.armed_at.is_none_or(|armed| at < armed) {
            state.armed_at = Some(at);
            return true;
        }
        false
    }

    /// A timer armed for `at` came due at `now`.
    pub(crate) fn check_due(&mut self, at: Instant, now: Instant) -> DueCheck {
        let state = &mut self.state;
        if state.armed_at != Some(at) {
            return DueCheck::Stale;
        }
        state.armed_at = None;
        if state.deadline > now {
            return DueCheck::Moved(state.deadline);
        }
        DueCheck::Expired
    }
}

/// Writes the frames an HTTP/2 session has queued, while the transport
/// takes them, at most [`WRITE_BUDGET`] a turn.
fn write_frames(
    session: &mut crate::h2::Session<ConnId>,
    sink: &mut dyn crate::send::Sink,
) -> io::Result<()> {
    let mut written = 0;
    while !session.unsent().is_empty() && written < WRITE_BUDGET as usize {
        let slice = [io::IoSlice::new(session.unsent())];
        match sink.write_slices(&slice, false) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                session.wrote(n);
                written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

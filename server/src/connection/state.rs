//! A connection's state apart from its socket, and the one function that
//! says what a connection waits for next ([`State::wants`]): pure, so
//! that the unit tests below check it without sockets.

use std::time::{Duration, Instant};

use crate::cgi::exchange::Exchange;
use crate::config::Config;
use crate::event::Interest;
use crate::http::head_scan::HeadScan;
use crate::http::request::{Request, MAX_HEAD};
use crate::output::Output;

/// The most unhandled input buffered per connection (a full head plus
/// room for pipelined requests behind it).
pub(crate) const MAX_INPUT: usize = MAX_HEAD + 16 * 1024;

/// How long an HTTP/2 connection with streams open waits for anything
/// (each stream has its own deadlines, which end it sooner).
const STREAMS_HELD: Duration = Duration::from_secs(24 * 3600);

/// Where a connection is.
#[derive(Debug)]
pub(super) enum Phase {
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

/// The timeouts that decide a connection's deadlines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) send: Duration,
    pub(crate) header: Duration,
    pub(crate) keepalive: Duration,
    pub(crate) cgi: Duration,
    /// How long a file body may wait for a helper to read a window.
    pub(crate) disk: Duration,
    /// How long a request body may be read and dropped in all (the
    /// keep-alive timer alone restarts with every byte).
    pub(crate) discard: Duration,
}

impl Timeouts {
    pub(crate) fn new(config: &Config) -> Timeouts {
        Timeouts {
            send: config.send_timeout,
            header: config.header_timeout,
            keepalive: config.keepalive_timeout,
            cgi: config.cgi_timeout,
            disk: config.helper_timeout,
            discard: config.discard_timeout,
        }
    }
}

/// What a connection waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wants {
    /// Readiness of this kind on its socket, or this deadline.
    Wait(Interest, Instant),
    /// Its last response is out: shut down writing and linger.
    Linger,
    /// Nothing more: close it.
    Close,
}

/// What a deadline coming due means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DueCheck {
    /// The timer entry is an old one; ignore it.
    Stale,
    /// The deadline moved later: arm a timer for it.
    Moved(Instant),
    /// The connection timed out.
    Expired,
}

/// Everything about a connection but its socket.
#[derive(Debug)]
pub(super) struct State {
    pub(super) input: Vec<u8>,
    pub(super) output: Output,
    pub(super) phase: Phase,
    /// Request-body bytes still to be read and dropped.
    pub(super) discard: u64,
    /// When dropping the current request body began.
    pub(super) discard_started: Option<Instant>,
    /// What the poller watches for now.
    pub(super) interest: Interest,
    /// When the connection times out in its current state.
    pub(super) deadline: Instant,
    /// The deadline of this connection's entry in the timer heap, if any.
    pub(super) armed_at: Option<Instant>,
    /// When the first byte of the request being read arrived.
    pub(super) request_started: Option<Instant>,
    /// The client shut down its side (a read of 0): it sends nothing
    /// more, but the requests it sent are still answered.
    pub(super) peer_closed: bool,
    /// Responses sent on this connection.
    pub(super) responses: u64,
    /// Request heads taken from the input (refused ones too).
    pub(super) requests: u64,
    /// When the connection was accepted.
    pub(super) opened: Instant,
    /// How far the head being read has been parsed.
    pub(super) head_scan: HeadScan,
    /// The transport holds bytes written but not yet on the socket (a
    /// TLS session's encrypted records).
    pub(super) transport_pending: bool,
    /// Plain HTTP arrived on a TLS port: answer it with a 400.
    pub(super) plain_on_tls: bool,
    /// The connection speaks HTTP/2: its requests are its streams'.
    pub(super) speaks_h2: bool,
    /// An HTTP/2 connection with streams open: they keep their own
    /// deadlines, so the connection has no idle timeout meanwhile.
    pub(super) holds_streams: bool,
    /// When an HTTP/2 connection last opened a stream (its idle timeout
    /// runs from then, not from frames that open nothing).
    pub(super) last_stream_at: Option<Instant>,
    /// Input waits for the HTTP/2 session's frames to be read first.
    pub(super) h2_input_waits: bool,
}

impl State {
    /// A connection accepted at `opened` whose first head is due by
    /// `deadline`.
    pub(super) fn new(opened: Instant, deadline: Instant) -> State {
        State {
            input: Vec::new(),
            output: Output::default(),
            phase: Phase::Reading,
            discard: 0,
            discard_started: None,
            interest: Interest::READABLE,
            deadline,
            armed_at: None,
            request_started: None,
            peer_closed: false,
            responses: 0,
            requests: 0,
            opened,
            head_scan: HeadScan::default(),
            transport_pending: false,
            plain_on_tls: false,
            speaks_h2: false,
            holds_streams: false,
            last_stream_at: None,
            h2_input_waits: false,
        }
    }

    /// Starts the clock on dropping a request body, or stops it once the
    /// body is dropped.
    pub(super) fn note_discard(&mut self, now: Instant) {
        match self.discard {
            0 => self.discard_started = None,
            _ => {
                self.discard_started.get_or_insert(now);
            }
        }
    }

    pub(super) fn input_room(&self) -> usize {
        MAX_INPUT.saturating_sub(self.input.len())
    }

    pub(super) fn wants(&self, now: Instant, t: &Timeouts) -> Wants {
        let can_read = self.input_room() > 0 && !self.peer_closed;
        let readable_if = |yes: bool| {
            if yes {
                Interest::READABLE
            } else {
                Interest::NONE
            }
        };
        match &self.phase {
            // Nothing can be written until a helper has read the window.
            _ if self.output.waits_for_disk() => Wants::Wait(Interest::NONE, now + t.disk),
            // Nor until the window budget has room: other clients hold it,
            // so the wait is for them, and as long as a send may stall.
            _ if self.output.waits_for_memory() => Wants::Wait(Interest::NONE, now + t.send),
            _ if !self.output.is_empty() || self.transport_pending => {
                Wants::Wait(Interest::WRITABLE, now + t.send)
            }
            // Read on after the body too (pipelined requests wait in the
            // buffer), so that a client that goes away is noticed under
            // select as well, which reports no hang-up on a descriptor it
            // does not watch.
            Phase::Cgi(ex) => Wants::Wait(readable_if(can_read), ex.deadline(t.cgi)),
            Phase::Waiting(_) => Wants::Wait(readable_if(can_read), self.deadline),
            Phase::Closing => {
                if self.input.is_empty() && self.discard == 0 && self.peer_closed {
                    Wants::Close
                } else {
                    Wants::Linger
                }
            }
            Phase::Lingering => Wants::Wait(Interest::READABLE, self.deadline),
            // A full buffer that still does not parse cannot happen (the
            // parser refuses oversized heads), but never spin.
            // A client's half-close leaves its streams to be answered.
            Phase::Reading if !can_read && self.holds_streams => {
                Wants::Wait(Interest::NONE, now + STREAMS_HELD)
            }
            Phase::Reading if !can_read => Wants::Close,
            Phase::Reading => {
                let deadline = match self.request_started {
                    _ if self.holds_streams => now + STREAMS_HELD,
                    // A frame begun must be finished within the header
                    // timeout; between frames, the idle one.
                    Some(started) => started + t.header,
                    None if self.speaks_h2 => {
                        self.last_stream_at.unwrap_or(self.opened) + t.keepalive
                    }
                    None if self.responses == 0 => self.deadline,
                    None => now + t.keepalive,
                };
                // A body being dropped gets no more than `discard` in all,
                // however often its bytes come.
                let deadline = match self.discard_started {
                    Some(started) if self.discard > 0 => deadline.min(started + t.discard),
                    _ => deadline,
                };
                Wants::Wait(Interest::READABLE, deadline)
            }
        }
    }
}

/// Timeouts for the unit tests, each a different number of seconds so
/// that a test can tell which one a deadline came from.
#[cfg(test)]
pub(super) const TEST_TIMEOUTS: Timeouts = Timeouts {
    send: Duration::from_secs(1),
    header: Duration::from_secs(2),
    keepalive: Duration::from_secs(3),
    cgi: Duration::from_secs(4),
    disk: Duration::from_secs(5),
    discard: Duration::from_secs(6),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgi::exchange::Stage;
    use crate::http::parse::parse;
    use crate::http::request::Parsed;

    const T: Timeouts = TEST_TIMEOUTS;

    fn request(raw: &str) -> Request {
        match parse(raw.as_bytes(), false) {
            Parsed::Request(request) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn a_new_connection_reads_until_its_first_deadline() {
        let t0 = Instant::now();
        let state = State::new(t0, t0 + T.header);
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, t0 + T.header)
        );
    }

    #[test]
    fn the_header_timeout_runs_from_the_first_byte() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        state.responses = 1;
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, t0 + T.keepalive)
        );
        state.request_started = Some(t0);
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            state.wants(later, &T),
            Wants::Wait(Interest::READABLE, t0 + T.header)
        );
    }

    #[test]
    fn queued_output_waits_for_writability() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        state.output.push_owned(b"x".to_vec());
        for phase in [Phase::Reading, Phase::Closing, Phase::Lingering] {
            state.phase = phase;
            assert_eq!(
                state.wants(t0, &T),
                Wants::Wait(Interest::WRITABLE, t0 + T.send)
            );
        }
    }

    #[test]
    fn a_closed_or_full_reader_is_closed() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        state.peer_closed = true;
        assert_eq!(state.wants(t0, &T), Wants::Close);
        let mut state = State::new(t0, t0);
        state.input = vec![b'x'; MAX_INPUT];
        assert_eq!(state.wants(t0, &T), Wants::Close);
    }

    #[test]
    fn closing_lingers_unless_the_client_is_gone() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        state.phase = Phase::Closing;
        assert_eq!(state.wants(t0, &T), Wants::Linger);
        state.peer_closed = true;
        assert_eq!(state.wants(t0, &T), Wants::Close);
        state.discard = 10;
        assert_eq!(state.wants(t0, &T), Wants::Linger);
        state.phase = Phase::Lingering;
        state.deadline = t0 + T.send;
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, t0 + T.send)
        );
    }

    #[test]
    fn waiting_for_a_helper_reads_only_while_there_is_room() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0 + Duration::from_secs(9));
        state.phase = Phase::Waiting(Box::new(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")));
        let deadline = t0 + Duration::from_secs(9);
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, deadline)
        );
        state.input = vec![b'x'; MAX_INPUT];
        assert_eq!(state.wants(t0, &T), Wants::Wait(Interest::NONE, deadline));
    }

    #[test]
    fn a_half_closed_client_still_gets_its_answers() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(9);
        let mut state = State::new(t0, deadline);
        state.peer_closed = true;
        // Waiting for a helper or a script: no more reading, but no close.
        state.phase = Phase::Waiting(Box::new(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")));
        assert_eq!(state.wants(t0, &T), Wants::Wait(Interest::NONE, deadline));
        let get = request("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let ex = Exchange::new(1, get, Stage::Queued, 0, t0);
        let cgi_deadline = ex.deadline(T.cgi);
        state.phase = Phase::Cgi(Box::new(ex));
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::NONE, cgi_deadline)
        );
        // An answer being written goes on; once it is out, the connection
        // closes (nothing more can come).
        state.phase = Phase::Reading;
        state.output.push_owned(b"x".to_vec());
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::WRITABLE, t0 + T.send)
        );
        state.output = Output::default();
        assert_eq!(state.wants(t0, &T), Wants::Close);
    }

    #[test]
    fn dropping_a_body_has_a_bound_in_all() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        state.responses = 1;
        state.discard = 100;
        state.note_discard(t0);
        assert_eq!(state.discard_started, Some(t0));
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, t0 + T.keepalive)
        );
        // Bytes keep coming, each restarting the keep-alive timer, but
        // the body's clock runs on from when dropping it began.
        let later = t0 + T.discard - Duration::from_secs(1);
        state.note_discard(later);
        assert_eq!(state.discard_started, Some(t0));
        assert_eq!(
            state.wants(later, &T),
            Wants::Wait(Interest::READABLE, t0 + T.discard)
        );
        // Once the body is dropped, the keep-alive timer alone counts.
        state.discard = 0;
        state.note_discard(later);
        assert_eq!(state.discard_started, None);
        assert_eq!(
            state.wants(later, &T),
            Wants::Wait(Interest::READABLE, later + T.keepalive)
        );
    }

    #[test]
    fn a_cgi_exchange_reads_while_it_has_room() {
        let t0 = Instant::now();
        let mut state = State::new(t0, t0);
        let post = request("POST /x.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
        let ex = Exchange::new(1, post, Stage::Queued, 5, t0);
        let deadline = ex.deadline(T.cgi);
        state.phase = Phase::Cgi(Box::new(ex));
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, deadline)
        );
        // With the body complete it still reads (a pipelined request, or
        // the client going away), until the buffer is full.
        let get = request("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        state.phase = Phase::Cgi(Box::new(Exchange::new(2, get, Stage::Queued, 0, t0)));
        assert_eq!(
            state.wants(t0, &T),
            Wants::Wait(Interest::READABLE, deadline)
        );
        state.input = vec![b'x'; MAX_INPUT];
        assert_eq!(state.wants(t0, &T), Wants::Wait(Interest::NONE, deadline));
    }
}

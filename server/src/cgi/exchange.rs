//! One CGI request in progress on a connection: the request body on its
//! way to the script, and the script's output on its way to the client,
//! re-framed as the client needs it (Content-Length when the script gave
//! one, otherwise chunked on HTTP/1.1 or close-delimited on HTTP/1.0; see
//! `http::body`). A request body, chunked or by Content-Length, is
//! collected in a [`Spool`] first and read back from it once the script
//! runs: a slow upload holds a connection, never a script slot.

use std::time::{Duration, Instant};

use protocol::ExitInfo;

use crate::cgi::pipes::Pipe;
use crate::cgi::script_head::{parse_script_head, HeadParse, ScriptResponse, MAX_SCRIPT_HEAD};
use crate::cgi::spool::{Spool, SpoolError};
use crate::http::body::{end_head, BodyEncoder, BodyKind};
use crate::http::chunked::ChunkedDecoder;
use crate::http::head_scan::HeadScan;
use crate::http::head_writer::{begin_with_reason, Stamp};
use crate::http::keep_alive;
use crate::http::request::{Method, Request};
use crate::http::status::Status;
use crate::output::Output;

/// How much longer than `--cgi-timeout` the server itself waits for a
/// script (the runner kills it at the timeout).
const TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Where the exchange is.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Reading the request body in full before the script starts, so
    /// that a slow upload takes no script slot (and a chunked body's
    /// CONTENT_LENGTH is known).
    Collecting(Framed),
    /// Sent to the runner; not started yet.
    Queued,
    /// The script runs; the server holds its pipes.
    Running(Script),
}

/// How a request body being collected is framed.
#[derive(Debug)]
pub(crate) enum Framed {
    /// By Content-Length: [`Exchange::body_left`] bytes are still to come.
    Length,
    /// In chunks, decoded as they come.
    Chunked(ChunkedDecoder),
}

/// A running script: its process and the server's ends of its pipes
/// (each `None` once closed).
#[derive(Debug)]
pub(crate) struct Script {
    /// The script's process (and process group) id.
    pub(crate) pid: u32,
    pub(crate) stdin: Option<Pipe>,
    pub(crate) stdout: Option<Pipe>,
}

/// What the script's output led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutputEvent {
    /// Bytes were queued for the client (or dropped by design).
    Progress,
    /// The script asked for a local redirect to this path.
    LocalRedirect(String),
    /// The header block is malformed: 502 (nothing was sent yet).
    BadHead(&'static str),
}

/// Why a request body could not be collected.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It breaks RFC 9112's chunked grammar (chunked bodies only).
    Malformed,
    /// It is larger than `--cgi-max-body`.
    TooLarge,
    /// It would pass `--cgi-spool-max`, or the spool file failed.
    Spool(SpoolError),
}

impl BodyError {
    /// The status the client gets.
    pub(crate) fn status(&self) -> Status {
        match self {
            BodyError::Malformed => Status::BAD_REQUEST,
            BodyError::TooLarge => Status::PAYLOAD_TOO_LARGE,
            BodyError::Spool(SpoolError::Full) => Status::SERVICE_UNAVAILABLE,
            BodyError::Spool(SpoolError::Io(_)) => Status::INTERNAL_ERROR,
        }
    }
}

/// One CGI request in progress.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) id: u64,
    pub(crate) request: Request,
    pub(crate) stage: Stage,
    /// Request-body bytes the client has still to send (Content-Length).
    pub(crate) body_left: u64,
    /// Request-body bytes waiting to be written to the script.
    pub(crate) to_script: Vec<u8>,
    /// A collected body not yet handed to the script.
    pub(crate) spool: Option<Spool>,
    /// While a body is collected: when it counts as stalled.
    pub(crate) body_deadline: Option<Instant>,
    /// Output read before the header block was complete.
    head: Vec<u8>,
    /// How far `head` has been parsed.
    head_scan: HeadScan,
    /// Set once the response head has been queued: how the body goes.
    pub(crate) body: Option<BodyEncoder>,
    pub(crate) nph: bool,
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    pub(crate) keep_alive: bool,
    pub(crate) exited: Option<(ExitInfo, bool)>,
    /// After the script exited: stop waiting for end-of-file then.
    pub(crate) eof_deadline: Option<Instant>,
    pub(crate) started: Instant,
}

impl Exchange {
    pub(crate) fn new(
        id: u64,
        request: Request,
        stage: Stage,
        body_left: u64,
        now: Instant,
    ) -> Exchange {
        let nph = request.cgi.as_ref().is_some_and(|c| {
            c.script
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("nph-"))
        });
        let keep_alive = keep_alive::unless_nph(request.keep_alive, nph);
        Exchange {
            id,
            request,
            stage,
            body_left,
            to_script: Vec::new(),
            spool: None,
            body_deadline: None,
            head: Vec::new(),
            head_scan: HeadScan::default(),
            body: None,
            nph,
            status: 0,
            body_bytes: 0,
            keep_alive,
            exited: None,
            eof_deadline: None,
            started: now,
        }
    }

    /// When the exchange must be looked at again: the end of the grace
    /// after the script exited, or well past the script's time limit.
    /// While a body is collected (no script yet): when it stalls.
    pub(crate) fn deadline(&self, cgi_timeout: Duration) -> Instant {
        if let (Stage::Collecting(_), Some(t)) = (&self.stage, self.body_deadline) {
            return t;
        }
        let limit = self.started + cgi_timeout + TIMEOUT_MARGIN;
        match self.eof_deadline {
            Some(t) => t.min(limit),
            None => limit,
        }
    }

    /// The running script, if it has started.
    pub(crate) fn script(&mut self) -> Option<&mut Script> {
        match &mut self.stage {
            Stage::Running(script) => Some(script),
            _ => None,
        }
    }

    /// The script's process group, while it runs and has not exited.
    pub(crate) fn live_pid(&self) -> Option<u32> {
        match (&self.stage, self.exited) {
            (Stage::Running(script), None) => Some(script.pid),
            _ => None,
        }
    }

    /// True once anything of the response has been queued.
    pub(crate) fn responded(&self) -> bool {
        self.body.is_some()
    }

    /// Collects the request body from the connection's input into the
    /// spool. Returns how many input bytes were used.
    pub(crate) fn collect(&mut self, input: &[u8], max_body: u64) -> Result<usize, BodyError> {
        let Some(spool) = self.spool.as_mut() else {
            return Ok(0);
        };
        let decoder = match &mut self.stage {
            Stage::Collecting(Framed::Chunked(decoder)) => decoder,
            Stage::Collecting(Framed::Length) => {
                // The length was held to --cgi-max-body on the head.
                let take = self.body_left.min(input.len() as u64) as usize;
                spool.append(&input[..take]).map_err(BodyError::Spool)?;
                self.body_left -= take as u64;
                return Ok(take);
            }
            _ => return Ok(0),
        };
        self.to_script.clear();
        let decoded = decoder.decode(input, &mut self.to_script, usize::MAX);
        let used = decoded.map_err(|_| BodyError::Malformed)?;
        if decoder.decoded > max_body {
            return Err(BodyError::TooLarge);
        }
        let appended = spool.append(&self.to_script);
        self.to_script.clear();
        appended.map_err(BodyError::Spool)?;
        Ok(used)
    }

    /// Takes request-body bytes for the script from the spool, up to
    /// `room` waiting. Nothing while collecting.
    pub(crate) fn take_body(&mut self, room: usize) {
        let space = room.saturating_sub(self.to_script.len());
        if matches!(self.stage, Stage::Collecting(_)) {
            return;
        }
        if let Some(spool) = self.spool.as_mut() {
            if let Err(e) = spool.read_into(&mut self.to_script, space) {
                // The script gets a short body; it sees CONTENT_LENGTH.
                error_log!(
                    "{:?}: reading back the spooled body: {e}",
                    format!("/{}", self.request.target.key)
                );
                self.spool = None;
            }
            if self.spool.as_ref().is_some_and(Spool::is_drained) {
                self.spool = None;
            }
        }
    }

    /// True while body bytes wait for the script (held or spooled).
    pub(crate) fn body_waiting(&self) -> bool {
        !self.to_script.is_empty() || self.spool.is_some()
    }

    /// True when the client has sent the whole request body.
    pub(crate) fn body_complete(&self) -> bool {
        match &self.stage {
            Stage::Collecting(Framed::Chunked(decoder)) => decoder.is_done(),
            _ => self.body_left == 0,
        }
    }

    /// Handles a piece of the script's output.
    pub(crate) fn on_output(
        &mut self,
        data: &[u8],
        out: &mut Output,
        stamp: Stamp<'_>,
    ) -> OutputEvent {
        if let Some(body) = self.body.as_mut() {
            self.body_bytes += out.push_body(body, data);
            return OutputEvent::Progress;
        }
        if self.nph {
            // The script writes the whole response, head included.
            let mut body = BodyEncoder::CloseDelimited;
            self.status = nph_status(data);
            self.body_bytes += out.push_body(&mut body, data);
            self.body = Some(body);
            return OutputEvent::Progress;
        }
        self.head.extend_from_slice(data);
        if !self.head_scan.ready(&self.head, MAX_SCRIPT_HEAD) {
            return OutputEvent::Progress;
        }
        match parse_script_head(&self.head) {
            HeadParse::Partial => OutputEvent::Progress,
            HeadParse::Invalid(why) => OutputEvent::BadHead(why),
            HeadParse::Complete(ScriptResponse::LocalRedirect { path }, _) => {
                OutputEvent::LocalRedirect(path)
            }
            HeadParse::Complete(
                ScriptResponse::Document {
                    status,
                    reason,
                    content_length,
                    headers,
                },
                used,
            ) => {
                let mut head = Vec::with_capacity(256);
                begin_with_reason(&mut head, status, &reason, stamp);
                for (name, value) in &headers {
                    head.extend_from_slice(name.as_bytes());
                    head.extend_from_slice(b": ");
                    head.extend_from_slice(value.as_bytes());
                    head.extend_from_slice(b"\r\n");
                }
                let kind = match status {
                    204 | 304 => BodyKind::NoBody,
                    _ if self.request.method == Method::Head => BodyKind::HeadOnly(content_length),
                    _ => BodyKind::Body(content_length),
                };
                let http10 = self.request.ends_body_by_closing();
                let (mut body, keep_alive) = end_head(&mut head, kind, self.keep_alive, http10);
                out.push_owned(head);
                self.keep_alive = keep_alive;
                self.status = status;
                self.body_bytes += out.push_body(&mut body, &self.head[used..]);
                self.body = Some(body);
                self.head = Vec::new();
                OutputEvent::Progress
            }
        }
    }

    /// The script's output ended. Queues what ends the response and says
    /// whether the connection can be kept. `None`: the script sent no
    /// complete header block (the caller answers 502 or 504).
    pub(crate) fn on_eof(&mut self, out: &mut Output) -> Option<bool> {
        let finished = out.finish_body(self.body.as_mut()?);
        self.keep_alive = keep_alive::after_exchange(self.keep_alive, finished, true);
        Some(self.keep_alive)
    }
}

/// The status code of an nph script's status line, for the log.
fn nph_status(data: &[u8]) -> u16 {
    data.get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgi::spool::SpoolBudget;
    use crate::http::parse::parse;
    use crate::http::request::Parsed;
    use crate::output::written;

    fn exchange(raw: &str) -> Exchange {
        let Parsed::Request(request) = parse(raw.as_bytes(), false) else {
            panic!("not a request");
        };
        Exchange::new(1, request, Stage::Queued, 0, Instant::now())
    }

    #[test]
    fn chunked_on_http11_without_length() {
        let mut ex = exchange("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Output::default();
        assert_eq!(
            ex.on_output(b"Content-Type: text/plain\r\n", &mut out, Stamp::plain("D")),
            OutputEvent::Progress
        );
        assert!(!ex.responded());
        ex.on_output(b"\r\nhello", &mut out, Stamp::plain("D"));
        ex.on_output(b" world", &mut out, Stamp::plain("D"));
        assert_eq!(ex.on_eof(&mut out), Some(true));
        let text = written(&mut out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(
            text.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn length_and_close_framing() {
        let mut ex = exchange("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Output::default();
        ex.on_output(
            b"Status: 201 Made\nContent-Length: 3\n\nabcdef",
            &mut out,
            Stamp::plain("D"),
        );
        assert_eq!(ex.on_eof(&mut out), Some(true));
        let text = written(&mut out);
        assert!(text.starts_with("HTTP/1.1 201 Made\r\n"));
        assert!(text.ends_with("Content-Length: 3\r\n\r\nabc"), "{text}");

        let mut ex = exchange("GET /x.cgi HTTP/1.0\r\n\r\n");
        let mut out = Output::default();
        ex.on_output(
            b"Content-Type: text/plain\n\nbody",
            &mut out,
            Stamp::plain("D"),
        );
        assert_eq!(ex.on_eof(&mut out), Some(false));
        let text = written(&mut out);
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nbody"));
    }

    #[test]
    fn head_requests_get_no_body() {
        let mut ex = exchange("HEAD /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Output::default();
        ex.on_output(
            b"Content-Type: text/plain\n\nbody",
            &mut out,
            Stamp::plain("D"),
        );
        ex.on_eof(&mut out);
        let text = written(&mut out);
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("chunked"));
    }

    #[test]
    fn redirects_and_bad_heads() {
        let mut ex = exchange("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Output::default();
        assert_eq!(
            ex.on_output(b"Location: /index.html\n\n", &mut out, Stamp::plain("D")),
            OutputEvent::LocalRedirect("/index.html".into())
        );
        let mut ex = exchange("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(matches!(
            ex.on_output(b"garbage\n\n", &mut out, Stamp::plain("D")),
            OutputEvent::BadHead(_)
        ));
        let mut ex = exchange("GET /x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(ex.on_eof(&mut out), None);
    }

    #[test]
    fn nph_output_passes_through() {
        let mut ex = exchange("GET /nph-x.cgi HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Output::default();
        ex.on_output(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nraw",
            &mut out,
            Stamp::plain("D"),
        );
        assert_eq!(ex.status, 200);
        assert_eq!(ex.on_eof(&mut out), Some(false));
        assert_eq!(
            written(&mut out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nraw"
        );
    }

    fn collecting(budget: &SpoolBudget) -> Exchange {
        let mut ex =
            exchange("POST /x.cgi HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        ex.stage = Stage::Collecting(Framed::Chunked(ChunkedDecoder::default()));
        ex.spool = Some(Spool::new(&std::env::temp_dir(), budget.clone()));
        ex
    }

    #[test]
    fn a_content_length_body_is_spooled_up_to_its_length() {
        let budget = SpoolBudget::new(1 << 20);
        let mut ex = exchange("POST /x.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n");
        ex.stage = Stage::Collecting(Framed::Length);
        ex.body_left = 10;
        ex.spool = Some(Spool::new(&std::env::temp_dir(), budget.clone()));
        assert_eq!(ex.collect(b"0123", 100).expect("first part"), 4);
        assert!(!ex.body_complete());
        let used = ex.collect(b"456789GET / HTTP/1.1", 100).expect("the rest");
        assert_eq!(used, 6, "the next request is not body");
        assert!(ex.body_complete());
        assert_eq!(budget.used(), 10);
        ex.stage = Stage::Queued;
        ex.take_body(4);
        assert_eq!(ex.to_script, b"0123");
        ex.to_script.clear();
        ex.take_body(100);
        assert_eq!(ex.to_script, b"456789");
        assert!(ex.spool.is_none(), "a drained spool is let go");
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_content_length_body_past_the_shared_bound_is_refused() {
        let budget = SpoolBudget::new(8);
        let mut ex = exchange("POST /x.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n");
        ex.stage = Stage::Collecting(Framed::Length);
        ex.body_left = 9;
        ex.spool = Some(Spool::new(&std::env::temp_dir(), budget.clone()));
        let refused = ex.collect(b"123456789", 100).map_err(|e| e.status().code);
        assert_eq!(refused, Err(503));
    }

    #[test]
    fn a_chunked_body_is_spooled_then_read_back_in_pieces() {
        let budget = SpoolBudget::new(1 << 20);
        let mut ex = collecting(&budget);
        let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(ex.collect(&input[..9], 100).expect("first part"), 9);
        assert!(!ex.body_complete());
        assert_eq!(
            ex.collect(&input[9..], 100).expect("the rest"),
            input.len() - 9
        );
        assert!(ex.body_complete());
        assert!(ex.to_script.is_empty(), "collected bytes wait in the spool");
        assert_eq!(budget.used(), 11);
        ex.stage = Stage::Queued;
        ex.take_body(4);
        assert_eq!(ex.to_script, b"hell");
        assert!(ex.body_waiting());
        ex.to_script.clear();
        ex.take_body(100);
        assert_eq!(ex.to_script, b"o world");
        assert!(ex.spool.is_none(), "a drained spool is let go");
        assert_eq!(budget.used(), 0);
        ex.to_script.clear();
        assert!(!ex.body_waiting());
    }

    #[test]
    fn collecting_refuses_bad_large_and_unspoolable_bodies() {
        let budget = SpoolBudget::new(8);
        let mut ex = collecting(&budget);
        let status = |r: Result<usize, BodyError>| r.map_err(|e| e.status().code);
        assert_eq!(status(ex.collect(b"5\r\nhello\r\n", 4)), Err(413));
        let mut ex = collecting(&budget);
        assert_eq!(status(ex.collect(b"x\r\n", 100)), Err(400));
        let mut ex = collecting(&budget);
        assert_eq!(status(ex.collect(b"9\r\n123456789\r\n", 100)), Err(503));
    }
}

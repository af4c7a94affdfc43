//! The access log, in the Combined Log Format or as one JSON object a
//! line (`--access-log-format`), buffered in memory and written out a few
//! times a second.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{AccessLogFormat, LogTarget};
use crate::http::clock::Clock;
use crate::http::request::LogFields;
use crate::respond::Reply;

/// Flush when this much is buffered...
const FLUSH_BYTES: usize = 32 * 1024;
/// ...or when the oldest buffered line is this old.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(200);

enum Sink {
    Stdout,
    File(File),
}

/// One access log.
pub(crate) struct AccessLog {
    sink: Option<Sink>,
    format: AccessLogFormat,
    buf: Vec<u8>,
    oldest: Option<Instant>,
}

impl AccessLog {
    /// Opens the log (appending to a file), or a disabled one for `off`.
    pub(crate) fn open(target: &LogTarget, format: AccessLogFormat) -> io::Result<AccessLog> {
        let sink = match target {
            LogTarget::Off => None,
            LogTarget::Stdout => Some(Sink::Stdout),
            LogTarget::File(path) => Some(Sink::File(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        };
        Ok(AccessLog {
            sink,
            format,
            buf: Vec::new(),
            oldest: None,
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes out what is buffered and opens the log anew (after SIGHUP,
    /// when the file may have been rotated). On failure the old one stays.
    pub(crate) fn reopen(&mut self, target: &LogTarget) {
        self.flush();
        match AccessLog::open(target, self.format) {
            Ok(log) => *self = log,
            Err(e) => error_log!("cannot reopen the access log: {e}"),
        }
    }

    /// Adds one line.
    pub(crate) fn record(
        &mut self,
        peer: SocketAddr,
        fields: &LogFields,
        reply: &Reply,
        clock: &Clock,
    ) {
        if self.sink.is_none() {
            return;
        }
        match self.format {
            AccessLogFormat::Combined => combined(&mut self.buf, peer, fields, reply, clock),
            AccessLogFormat::Json => json(&mut self.buf, peer, fields, reply),
        }
        self.oldest.get_or_insert(clock.now());
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Writes out what is buffered if it is old enough.
    pub(crate) fn flush_if_due(&mut self, now: Instant) {
        if self
            .oldest
            .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_EVERY)
        {
            self.flush();
        }
    }

    /// When the buffered lines must be written, if there are any.
    pub(crate) fn next_flush(&self) -> Option<Instant> {
        self.oldest.map(|t| t + FLUSH_EVERY)
    }

    pub(crate) fn flush(&mut self) {
        self.oldest = None;
        if self.buf.is_empty() {
            return;
        }
        let result = match &mut self.sink {
            Some(Sink::Stdout) => io::stdout().lock().write_all(&self.buf),
            Some(Sink::File(f)) => f.write_all(&self.buf),
            None => Ok(()),
        };
        if let Err(e) = result {
            error_log!("cannot write the access log: {e}");
        }
        self.buf.clear();
    }
}

/// One line in the Combined Log Format.
fn combined(buf: &mut Vec<u8>, peer: SocketAddr, fields: &LogFields, reply: &Reply, clock: &Clock) {
    let date = clock.log_date();
    let (status, bytes) = (reply.status.code, reply.body_bytes);
    let referer = fields.referer.as_deref().unwrap_or("-");
    let agent = fields.user_agent.as_deref().unwrap_or("-");
    let _ = writeln!(
        buf,
        "{} - - [{date}] \"{}\" {status} {bytes} \"{}\" \"{}\"",
        peer.ip(),
        fields.request_line,
        escape(referer),
        escape(agent)
    );
}

/// One JSON object on one line: the Combined fields (an absent header is
/// `null`), the time in RFC 3339 UTC, and the request line's method, target
/// and protocol as fields of their own.
fn json(buf: &mut Vec<u8>, peer: SocketAddr, fields: &LogFields, reply: &Reply) {
    let mut parts = fields.request_line.splitn(3, ' ');
    let (method, target, protocol) = (parts.next(), parts.next(), parts.next());
    let line = serde_json::json!({
        "time": protocol::calendar::rfc3339_millis(std::time::SystemTime::now()),
        "remote_addr": peer.ip().to_string(),
        "request": fields.request_line,
        "method": method,
        "target": target,
        "protocol": protocol,
        "status": reply.status.code,
        "bytes": reply.body_bytes,
        "referer": fields.referer,
        "user_agent": fields.user_agent,
    });
    let _ = serde_json::to_writer(&mut *buf, &line);
    buf.push(b'\n');
}

/// Quotes and control characters in logged header values become `?`.
fn escape(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

//! Writing response heads and the small HTML error pages.

use protocol::FileMeta;

use super::body::{end_head, BodyEncoder, BodyKind};
use super::clock::http_date;
use super::head_memo::HeadMemo;
use super::request::{Method, Rejection, Request};
use super::status::Status;

/// The `Server` header's value.
pub const SERVER_NAME: &str = concat!("amped/", env!("CARGO_PKG_VERSION"));

/// The parts of a file's response head that depend only on the file,
/// built once when the file enters the cache; and the whole head of its
/// common answer for the current second (`ok_head`, which also depends
/// on the date and on the entry's body length, and starts empty in a
/// copy).
#[derive(Debug, Clone)]
pub struct FileHeaders {
    pub etag: String,
    /// `Content-Type`, `Last-Modified`, `ETag` and `Accept-Ranges` lines.
    pub lines: Vec<u8>,
    /// The length of the `Content-Type` line that starts `lines`.
    content_type_line: usize,
    /// The whole head of a plain 200 for the current second.
    pub ok_head: HeadMemo,
}

impl FileHeaders {
    pub fn new(content_type: &str, meta: &FileMeta) -> FileHeaders {
        let etag = format!("\"{:x}-{:x}\"", meta.mtime_secs, meta.size);
        let content_type_line = "Content-Type: \r\n".len() + content_type.len();
        let lines = format!(
            "Content-Type: {content_type}\r\nLast-Modified: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n",
            http_date(meta.mtime_secs)
        )
        .into_bytes();
        FileHeaders {
            etag,
            lines,
            content_type_line,
            ok_head: HeadMemo::default(),
        }
    }

    /// The file's media type, as its `Content-Type` line says.
    pub fn content_type(&self) -> &str {
        let value = b"Content-Type: ".len()..self.content_type_line.saturating_sub(2);
        self.lines
            .get(value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// The lines but `Content-Type` (a multipart body has its own).
    pub fn lines_but_content_type(&self) -> &[u8] {
        self.lines.get(self.content_type_line..).unwrap_or_default()
    }
}

/// Starts a head: status line, `Date` and `Server`.
pub fn begin(out: &mut Vec<u8>, status: Status, date: &str) {
    begin_with_reason(out, status.code, status.reason, date);
}

/// Starts a head with any status code and reason phrase.
pub fn begin_with_reason(out: &mut Vec<u8>, code: u16, reason: &str, date: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    match code {
        100..=999 => out.extend_from_slice(&three_digits(code)),
        _ => push_decimal(out, u64::from(code)),
    }
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    // An IMF-fixdate is 29 bytes: a copy of known length needs no call.
    match <&[u8; 29]>::try_from(date.as_bytes()) {
        Ok(fixed) => out.extend_from_slice(fixed),
        Err(_) => out.extend_from_slice(date.as_bytes()),
    }
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER_NAME.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Adds `Content-Length`.
pub fn content_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, length);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in hexadecimal (a chunk size), without allocating.
pub fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The three digits of a status code from 100 to 999.
fn three_digits(code: u16) -> [u8; 3] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [digit(code / 100), digit(code / 10), digit(code)]
}

/// Appends `n` in decimal, without allocating.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// What of a request shapes the error page answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorTo {
    /// The request was HTTP/1.0 (a kept connection must say so).
    pub http10: bool,
    /// The request was a HEAD: the page goes without its body.
    pub head_only: bool,
    /// The connection stays open after the page.
    pub keep_alive: bool,
}

impl ErrorTo {
    /// To a client whose request is unknown; the connection closes.
    pub const UNKNOWN: ErrorTo = ErrorTo {
        http10: false,
        head_only: false,
        keep_alive: false,
    };
}

impl Request {
    /// What the error page answering this request depends on; the
    /// connection is kept if `keep_alive`.
    pub fn error_to(&self, keep_alive: bool) -> ErrorTo {
        ErrorTo {
            http10: self.http10,
            head_only: self.method == Method::Head,
            keep_alive,
        }
    }
}

impl Rejection {
    /// What the error page answering this refusal depends on.
    pub fn error_to(&self) -> ErrorTo {
        ErrorTo {
            http10: self.http10,
            head_only: self.head,
            keep_alive: self.keep_alive,
        }
    }
}

/// A complete error response (head and, unless `to.head_only`, a small
/// HTML body). `extra` holds further header lines, each ending in CRLF.
/// Returns the body's length as sent.
pub fn error(out: &mut Vec<u8>, to: &ErrorTo, status: Status, extra: &str, date: &str) -> u64 {
    let body = error_page(status);
    begin(out, status, date);
    out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n");
    out.extend_from_slice(extra.as_bytes());
    let length = Some(body.len() as u64);
    let kind = match to.head_only {
        true => BodyKind::HeadOnly(length),
        false => BodyKind::Body(length),
    };
    // The page is small and goes out with its head, in one piece.
    match end_head(out, kind, to.keep_alive, to.http10) {
        (BodyEncoder::Empty, _) => 0,
        _ => {
            out.extend_from_slice(body.as_bytes());
            body.len() as u64
        }
    }
}

/// The HTML body of an error response.
pub fn error_page(status: Status) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1><hr><p>{server}</p></body></html>\n",
        code = status.code,
        reason = status.reason,
        server = SERVER_NAME
    )
}

/// A bare 503 sent to a connection refused at accept time.
pub fn overloaded(date: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    error(
        &mut out,
        &ErrorTo::UNKNOWN,
        Status::SERVICE_UNAVAILABLE,
        "Retry-After: 1\r\n",
        date,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_complete() {
        let mut out = Vec::new();
        let to = ErrorTo {
            keep_alive: true,
            ..ErrorTo::UNKNOWN
        };
        let n = error(&mut out, &to, Status::NOT_FOUND, "", "D");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nDate: D\r\nServer: amped/"));
        assert!(text.contains(&format!("Content-Length: {n}\r\n")));
        assert!(!text.contains("Connection:"));
        let (_, body) = text.split_once("\r\n\r\n").expect("head ends");
        assert_eq!(body.len() as u64, n);
        assert!(body.contains("404 Not Found"));
    }

    #[test]
    fn file_headers_split_off_their_content_type() {
        let meta = FileMeta {
            size: 16,
            mtime_secs: 95,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        let h = FileHeaders::new("text/plain; charset=utf-8", &meta);
        assert_eq!(h.content_type(), "text/plain; charset=utf-8");
        assert!(h
            .lines
            .starts_with(b"Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(h.lines_but_content_type().starts_with(b"Last-Modified: "));
        assert_eq!(h.etag, "\"5f-10\"");
    }

    #[test]
    fn status_lines() {
        for (code, reason) in [(200, "OK"), (100, "Continue"), (999, "X"), (42, "Odd")] {
            let mut out = Vec::new();
            begin_with_reason(&mut out, code, reason, "Sun, 06 Nov 1994 08:49:37 GMT");
            let expected = format!(
                "HTTP/1.1 {code} {reason}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER_NAME}\r\n"
            );
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
        let mut out = Vec::new();
        begin_with_reason(&mut out, 200, "OK", "D");
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: D\r\n"));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 1234, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn connection_header_follows_keep_alive() {
        let mut out = Vec::new();
        end_head(&mut out, BodyKind::NoBody, false, false);
        assert_eq!(out, b"Connection: close\r\n\r\n");
        out.clear();
        end_head(&mut out, BodyKind::NoBody, true, true);
        assert_eq!(out, b"Connection: keep-alive\r\n\r\n");
        out.clear();
        end_head(&mut out, BodyKind::NoBody, true, false);
        assert_eq!(out, b"\r\n");
    }

    #[test]
    fn hexadecimals() {
        for n in [0u64, 9, 10, 255, 4096, u64::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
        }
    }
}

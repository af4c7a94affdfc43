//! The small HTML error pages, and what of a request shapes one
//! ([`ErrorTo`]: its version, HEAD or not, whether the connection stays).

use super::body::{end_head, BodyEncoder, BodyKind};
use super::head_writer::{begin, Stamp, SERVER_NAME};
use super::request::{Method, Rejection, Request};
use super::status::Status;

/// What of a request shapes the error page answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorTo {
    /// The request was HTTP/1.0 (a kept connection must say so).
    pub(crate) http10: bool,
    /// The request was a HEAD: the page goes without its body.
    pub(crate) head_only: bool,
    /// The connection stays open after the page.
    pub(crate) keep_alive: bool,
}

impl ErrorTo {
    /// To a client whose request is unknown; the connection closes.
    pub(crate) const UNKNOWN: ErrorTo = ErrorTo {
        http10: false,
        head_only: false,
        keep_alive: false,
    };
}

impl Request {
    /// What the error page answering this request depends on; the
    /// connection is kept if `keep_alive`.
    pub(crate) fn error_to(&self, keep_alive: bool) -> ErrorTo {
        ErrorTo {
            http10: self.http10,
            head_only: self.method == Method::Head,
            keep_alive,
        }
    }
}

impl Rejection {
    /// What the error page answering this refusal depends on.
    pub(crate) fn error_to(&self) -> ErrorTo {
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
pub(crate) fn error(
    out: &mut Vec<u8>,
    to: &ErrorTo,
    status: Status,
    extra: &str,
    stamp: Stamp<'_>,
) -> u64 {
    error_saying(out, to, status, extra, stamp, &error_page(status))
}

/// Like [`error`], with `body` as the page.
pub(crate) fn error_saying(
    out: &mut Vec<u8>,
    to: &ErrorTo,
    status: Status,
    extra: &str,
    stamp: Stamp<'_>,
    body: &str,
) -> u64 {
    begin(out, status, stamp);
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
pub(crate) fn error_page(status: Status) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1><hr><p>{server}</p></body></html>\n",
        code = status.code,
        reason = status.reason,
        server = SERVER_NAME
    )
}

/// The page for plain HTTP sent to a TLS port (nginx's words).
pub(crate) fn plain_http_to_tls_page() -> String {
    let status = Status::BAD_REQUEST;
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1><p>The plain HTTP request was sent to HTTPS port.</p><hr><p>{server}</p></body></html>\n",
        code = status.code,
        reason = status.reason,
        server = SERVER_NAME
    )
}

/// A bare 503 sent to a connection refused at accept time.
pub(crate) fn overloaded(stamp: Stamp<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    error(
        &mut out,
        &ErrorTo::UNKNOWN,
        Status::SERVICE_UNAVAILABLE,
        "Retry-After: 1\r\n",
        stamp,
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
        let n = error(&mut out, &to, Status::NOT_FOUND, "", Stamp::plain("D"));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nDate: D\r\nServer: amped/"));
        assert!(text.contains(&format!("Content-Length: {n}\r\n")));
        assert!(!text.contains("Connection:"));
        let (_, body) = text.split_once("\r\n\r\n").expect("head ends");
        assert_eq!(body.len() as u64, n);
        assert!(body.contains("404 Not Found"));
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
}

//! A request as amped serves it ([`Request`]), one it refuses
//! ([`Rejection`]), and what reading a head can come to ([`Parsed`]),
//! with the limits a head is held to. Reading a head is `parse.rs`.

use super::accept_encoding::Gzip;
use super::conditional::Conditions;
use super::path::Target;
use super::request_body::Framing;
use super::status::Status;

/// The largest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The longest request target accepted (414 beyond).
pub(crate) const MAX_TARGET: usize = 8 * 1024;
/// The most header fields accepted (431 beyond).
pub(crate) const MAX_HEADERS: usize = 100;
/// A request body up to this size is read and discarded so the
/// connection can be kept; a larger one closes the connection.
pub(crate) const MAX_DISCARDED_BODY: u64 = 1 << 20;

/// The methods a file answers to (the 405's and OPTIONS' `Allow`).
pub(crate) const ALLOW_FILES: &str = "GET, HEAD, OPTIONS";
/// The methods a CGI script answers to, and the server as a whole
/// (`OPTIONS *`).
pub(crate) const ALLOW_SCRIPTS: &str = "GET, HEAD, OPTIONS, POST";

/// The request's method, as far as the server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    /// `OPTIONS`, answered by the server itself with this `Allow`.
    Options(&'static str),
    /// Any other method: only CGI scripts take these.
    Other,
}

/// What a request for a CGI script carries beyond a static request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptRequest {
    /// The method as sent.
    pub(crate) method: String,
    /// The script's path beneath the root (`cgi-bin/app.cgi`).
    pub(crate) script: String,
    /// What follows the script in the path (`/extra/path`), or empty.
    pub(crate) path_info: String,
    /// The request target as sent.
    pub(crate) request_uri: String,
    /// Every header field, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// `Expect: 100-continue` was sent.
    pub(crate) expect_continue: bool,
}

/// What the access log wants to know about a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogFields {
    pub(crate) request_line: String,
    pub(crate) referer: Option<String>,
    pub(crate) user_agent: Option<String>,
}

/// A request to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) http10: bool,
    /// The request came on an HTTP/2 stream: a body of unknown length
    /// ends with the stream, never chunked.
    pub(crate) http2: bool,
    pub(crate) target: Target,
    /// The validated host the request is for (the absolute-form target's
    /// authority, else the `Host` header), without its port, an IP
    /// literal without brackets (a script's SERVER_NAME, a redirect's
    /// host). `None` when an HTTP/1.0 client named none.
    pub(crate) host: Option<Box<str>>,
    pub(crate) keep_alive: bool,
    /// Bytes of the head, to be consumed from the buffer.
    pub(crate) head_len: usize,
    pub(crate) body: Framing,
    pub(crate) range: Option<String>,
    /// Whether `Accept-Encoding` takes gzip (for `--gzip-static`).
    pub(crate) gzip: Gzip,
    /// `If-Match` and the other conditional header fields, if any.
    pub(crate) conditions: Option<Box<Conditions>>,
    pub(crate) log: Option<LogFields>,
    /// Set for requests to `*.cgi` scripts.
    pub(crate) cgi: Option<Box<ScriptRequest>>,
    /// Local redirects (from CGI scripts) that led to this request.
    pub(crate) redirects: u8,
}

impl Request {
    /// True when a body of unknown length is delimited by the end of the
    /// connection (HTTP/1.0) or of the stream (HTTP/2), not chunked.
    pub(crate) fn ends_body_by_closing(&self) -> bool {
        self.http10 || self.http2
    }
}

/// A request refused before it reaches the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: Status,
    /// The request was HTTP/1.0 (a kept connection must say so).
    pub(crate) http10: bool,
    /// The request was a HEAD: the error page goes without its body.
    pub(crate) head: bool,
    /// Whether the connection may stay open after the error response.
    pub(crate) keep_alive: bool,
    /// Bytes of the head (0 when the head could not be delimited).
    pub(crate) head_len: usize,
    pub(crate) body: Framing,
    pub(crate) log: Option<LogFields>,
}

/// The result of looking at a connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// No complete head yet; read more.
    Partial,
    Request(Request),
    Rejected(Rejection),
}

//! A minimal raw HTTP/1.1 client over `TcpStream`: writes the bytes a test
//! gives it, reads responses one at a time off the same connection (so
//! pipelined responses come back in order), frames bodies by
//! `Content-Length` or by close, and knows that HEAD, 1xx, 204 and 304
//! responses carry no body. Bodies are read straight into one buffer, so
//! 100 MiB responses are cheap.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::DEADLINE;

/// Largest response head the client accepts.
const MAX_HEAD: usize = 1 << 20;
/// Read granularity for heads and close-delimited bodies.
const CHUNK: usize = 64 * 1024;

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many header fields are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The header named `name`, or a panic that shows the whole head.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("response has no `{name}` header:\n{}", self.head_text()))
    }

    /// `Content-Length` as a number, if present.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }

    /// True if the `Connection` header lists `token` (case-insensitive).
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status line and headers, for failure messages.
    pub fn head_text(&self) -> String {
        let mut s = format!("{} {} {}\n", self.version, self.status, self.reason);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\n"));
        }
        s
    }

    /// Panics unless the status is `status`.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "expected status {status}, got:\n{}\n{}",
            self.head_text(),
            excerpt(&self.body)
        );
        self
    }

    /// Panics unless this is an error page as the contract describes it:
    /// status `status`, a small HTML body with
    /// `Content-Type: text/html; charset=utf-8` and a matching
    /// `Content-Length`.
    pub fn assert_error_page(&self, status: u16) -> &Self {
        self.assert_status(status);
        assert_eq!(
            self.header("Content-Type"),
            Some("text/html; charset=utf-8"),
            "error page Content-Type:\n{}",
            self.head_text()
        );
        assert_eq!(
            self.content_length(),
            Some(self.body.len() as u64),
            "error page needs a Content-Length matching its body:\n{}",
            self.head_text()
        );
        assert!(
            !self.body.is_empty(),
            "error page {status} has an empty body"
        );
        self
    }
}

fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(512);
    let mut s = String::from_utf8_lossy(&body[..end]).into_owned();
    if body.len() > end {
        s.push_str(&format!("... ({} bytes in all)", body.len()));
    }
    s
}

/// Where `got` first differs from `expected`: both lengths, the offset and
/// the bytes there (not the whole buffers); `None` when they are equal.
pub fn bytes_mismatch(got: &[u8], expected: &[u8]) -> Option<String> {
    if got == expected {
        return None;
    }
    let first_diff = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    let window = |b: &[u8]| {
        let end = b.len().min(first_diff + 16);
        format!("{:02x?}", &b[first_diff.min(end)..end])
    };
    Some(format!(
        "got {} bytes, expected {}; first difference at offset {first_diff} (got {}, expected {})",
        got.len(),
        expected.len(),
        window(got),
        window(expected)
    ))
}

/// Panics with [`bytes_mismatch`] unless `got == expected`.
pub fn assert_bytes_eq(what: &str, got: &[u8], expected: &[u8]) {
    if let Some(mismatch) = bytes_mismatch(got, expected) {
        panic!("{what}: body differs: {mismatch}");
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// One client connection with its own read buffer.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Connection {
    /// Connects with 30 s read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::from_stream(stream)
    }

    /// Wraps an already connected socket (sets 30 s timeouts).
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set_read_timeout");
        stream
            .set_write_timeout(Some(DEADLINE))
            .expect("set_write_timeout");
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sets the read timeout (the default is 30 s).
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
    }

    /// Writes all of `bytes`.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes all of `bytes`, panicking on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("sending {} request bytes: {e}", bytes.len()));
    }

    /// Sends `GET path HTTP/1.1` with `Host` and reads the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    /// Sends `METHOD path HTTP/1.1` with `Host` and `headers`, then reads
    /// the response (bodiless if the method is HEAD).
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(request_bytes(method, path, headers).as_bytes());
        if method == "HEAD" {
            self.read_head_response()
        } else {
            self.read_response()
        }
    }

    /// Reads one response to a non-HEAD request, panicking on error.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads one response to a HEAD request (never a body).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .unwrap_or_else(|e| panic!("reading a HEAD response: {e}"))
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end-of-file.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let result = self.stream.read(&mut self.buf[old..]);
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        result
    }

    /// Reads one response; `head_request` says the request was HEAD.
    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut response = self.try_read_head()?;

        // The body.
        if has_no_body(head_request, response.status) {
            return Ok(response);
        }
        if response
            .header("Transfer-Encoding")
            .is_some_and(|te| !te.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("unexpected Transfer-Encoding in:\n{}", response.head_text()),
            ));
        }
        match response.content_length() {
            Some(len) => {
                let len = usize::try_from(len).expect("Content-Length fits in memory");
                response.body = self.read_exact_body(len)?;
            }
            None => {
                response.body = self.read_until_close()?;
            }
        }
        Ok(response)
    }

    /// Reads a close-delimited body: what is buffered, then everything
    /// until the server closes.
    fn read_until_close(&mut self) -> io::Result<Vec<u8>> {
        let mut body = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        loop {
            let old = body.len();
            body.resize(old + CHUNK, 0);
            match self.stream.read(&mut body[old..]) {
                Ok(0) => {
                    body.truncate(old);
                    return Ok(body);
                }
                Ok(n) => body.truncate(old + n),
                Err(e) if e.kind() == ErrorKind::Interrupted => body.truncate(old),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("reading a close-delimited body after {old} bytes: {e}"),
                    ))
                }
            }
        }
    }

    fn read_exact_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let buffered = (self.buf.len() - self.pos).min(len);
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(&self.buf[self.pos..self.pos + buffered]);
        self.pos += buffered;
        let mut have = buffered;
        body.resize(len, 0);
        while have < len {
            match self.stream.read(&mut body[have..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("connection closed after {have} of {len} body bytes"),
                    ))
                }
                Ok(n) => have += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("after {have} of {len} body bytes: {e}"),
                    ))
                }
            }
        }
        Ok(body)
    }

    /// Bytes received but not yet consumed by a `read_*` call.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// True if response bytes are waiting (buffered or in the socket),
    /// without blocking.
    pub fn has_pending_bytes(&self) -> bool {
        if self.pos < self.buf.len() {
            return true;
        }
        self.stream
            .set_nonblocking(true)
            .expect("set_nonblocking(true)");
        let mut probe = [0u8; 1];
        let pending = match self.stream.peek(&mut probe) {
            Ok(_) => true, // data, or end-of-file: either way something arrived
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        self.stream
            .set_nonblocking(false)
            .expect("set_nonblocking(false)");
        pending
    }

    /// Asserts that the server closes the connection (end-of-file, or a
    /// reset) within the deadline, sending nothing more.
    pub fn expect_closed(&mut self) {
        assert!(
            self.pos == self.buf.len(),
            "unexpected bytes after the response: {:?}",
            String::from_utf8_lossy(&self.buf[self.pos..])
        );
        let mut probe = [0u8; 4096];
        match self.stream.read(&mut probe) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected the server to close the connection, got {n} more bytes: {:?}",
                String::from_utf8_lossy(&probe[..n])
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) if timed_out(&e) => {
                panic!("the server did not close the connection within {DEADLINE:?}")
            }
            Err(e) => panic!("expected end-of-file, got {e}"),
        }
    }
}

/// `METHOD path HTTP/1.1` with `Host: 127.0.0.1` and `headers`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &str) -> io::Result<Response> {
    let bad = |what: String| io::Error::new(ErrorKind::InvalidData, what);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !(version == "HTTP/1.1" || version == "HTTP/1.0") {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status code in {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?} in:\n{head}")))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(bad(format!("bad header name in {line:?}")));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Response {
        version: version.to_owned(),
        status,
        reason,
        headers,
        body: Vec::new(),
    })
}

/// A response that has no body whatever its headers say (RFC 9112 6.3).
fn has_no_body(head_request: bool, status: u16) -> bool {
    head_request || status < 200 || status == 204 || status == 304
}

/// Fetches `path` with GET on a new connection.
pub fn fetch(addr: SocketAddr, path: &str) -> Response {
    Connection::connect(addr).get(path)
}

/// Reading responses whose body may be `Transfer-Encoding: chunked` (CGI
/// output without a Content-Length), and reading a response head alone.
impl Connection {
    /// Reads one response head (status line and header fields) and
    /// nothing of its body.
    pub fn try_read_head(&mut self) -> io::Result<Response> {
        let mut searched = self.pos;
        let head_end = loop {
            if let Some(i) = find(&self.buf[searched..], b"\r\n\r\n") {
                break searched + i + 4;
            }
            searched = self.buf.len().saturating_sub(3).max(self.pos);
            if self.buf.len() - self.pos > MAX_HEAD {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "response head larger than 1 MiB",
                ));
            }
            let before = self.pos;
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a complete response head ({} bytes: {:?})",
                            self.buf.len() - self.pos,
                            String::from_utf8_lossy(&self.buf[self.pos..])
                        ),
                    ))
                }
                Ok(_) => {
                    if self.pos != before {
                        searched = self.pos;
                    }
                }
                Err(e) if timed_out(&e) => {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!("no complete response head within the read timeout: {e}"),
                    ))
                }
                Err(e) => return Err(e),
            }
        };
        let head = std::str::from_utf8(&self.buf[self.pos..head_end - 4])
            .map_err(|_| io::Error::new(ErrorKind::InvalidData, "response head is not UTF-8"))?
            .to_owned();
        self.pos = head_end;
        parse_head(&head)
    }

    /// Reads one response head, panicking on error.
    pub fn read_head(&mut self) -> Response {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("reading a response head: {e}"))
    }

    /// Like [`try_read_response`](Self::try_read_response), but a
    /// `Transfer-Encoding: chunked` body is decoded (strictly: hex sizes,
    /// CRLF after each chunk, a last chunk of size 0, trailers skipped)
    /// into `Response::body`; the headers stay as sent.
    pub fn try_read_response_dechunked(&mut self, head_request: bool) -> io::Result<Response> {
        let mut response = self.try_read_head()?;
        if has_no_body(head_request, response.status) {
            return Ok(response);
        }
        let chunked = match response.header("Transfer-Encoding") {
            None => false,
            Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
            Some(te) if te.trim().eq_ignore_ascii_case("identity") => false,
            Some(te) => {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("unexpected Transfer-Encoding {te:?}"),
                ))
            }
        };
        if chunked {
            if response.header("Content-Length").is_some() {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "both Content-Length and chunked in:\n{}",
                        response.head_text()
                    ),
                ));
            }
            response.body = self.read_chunked_body()?;
        } else if let Some(len) = response.content_length() {
            let len = usize::try_from(len).expect("Content-Length fits in memory");
            response.body = self.read_exact_body(len)?;
        } else {
            response.body = self.read_until_close()?;
        }
        Ok(response)
    }

    /// Reads one response to a non-HEAD request, decoding a chunked body;
    /// panics on error.
    pub fn read_response_dechunked(&mut self) -> Response {
        self.try_read_response_dechunked(false)
            .unwrap_or_else(|e| panic!("reading a (possibly chunked) response: {e}"))
    }

    /// One CRLF-terminated line (without the CRLF), at most 4 KiB.
    fn read_crlf_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > 4096 {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "chunk-size or trailer line longer than 4 KiB",
                ));
            }
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed inside the chunked framing",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn read_chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let bad = |what: String| io::Error::new(ErrorKind::InvalidData, what);
        let mut body = Vec::new();
        loop {
            let line = self.read_crlf_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(format!("bad chunk-size line {line:?}")))?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                while !self.read_crlf_line()?.is_empty() {}
                return Ok(body);
            }
            let data = self.read_exact_body(size).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "in a {size}-byte chunk after {} body bytes: {e}",
                        body.len()
                    ),
                )
            })?;
            body.extend_from_slice(&data);
            let end = self.read_crlf_line()?;
            if !end.is_empty() {
                return Err(bad(format!(
                    "chunk of {size} bytes not followed by CRLF (got {end:?})"
                )));
            }
        }
    }
}

/// Requests whose response may be chunked.
impl Connection {
    /// Sends `GET path HTTP/1.1` with `Host` and reads the response,
    /// decoding a chunked body.
    pub fn get_dechunked(&mut self, path: &str) -> Response {
        self.request_dechunked("GET", path, &[])
    }

    /// Sends `METHOD path HTTP/1.1` with `Host` and `headers`, then reads
    /// the response (bodiless if the method is HEAD), decoding a chunked
    /// body.
    pub fn request_dechunked(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.send(request_bytes(method, path, headers).as_bytes());
        self.try_read_response_dechunked(method == "HEAD")
            .unwrap_or_else(|e| panic!("reading the response to {method} {path}: {e}"))
    }
}

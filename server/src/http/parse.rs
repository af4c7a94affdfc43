//! Parsing and validating one request head: a plain one by the fast
//! path of `simple_head.rs`, any other with `httparse`.
//!
//! [`parse`] looks at the bytes a connection has buffered and says whether
//! a whole head is there, and if so whether it is a request amped serves
//! or one it refuses (with the status to answer and whether the
//! connection can stay open, as RFC 9112 allows).

use std::mem::MaybeUninit;

use super::accept_encoding::gzip_accepted;
use super::header_fields::{Fields, HeaderFields};
use super::host::parse_authority;
use super::path::{parse_target, PathError, Target};
use super::request::{
    LogFields, Method, Parsed, Rejection, Request, ScriptRequest, ALLOW_FILES, ALLOW_SCRIPTS,
    MAX_DISCARDED_BODY, MAX_HEAD, MAX_HEADERS, MAX_TARGET,
};
use super::request_body::Framing;
use super::script_path::split_script;
use super::simple_head;
use super::status::Status;
use crate::http::keep_alive;

fn reject(status: Status, log: Option<LogFields>) -> Parsed {
    Parsed::Rejected(Rejection {
        status,
        http10: false,
        head: false,
        keep_alive: false,
        head_len: 0,
        body: Framing::None,
        log,
    })
}

/// Parses the head at the start of `buf`. `want_log` asks for the fields
/// the access log needs.
pub(crate) fn parse(buf: &[u8], want_log: bool) -> Parsed {
    // Left uninitialised: httparse writes only the fields it parses, and
    // zeroing 100 of them would cost more than parsing a small head.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let simple = simple_head::parse(buf);
    let head = match &simple {
        Some(simple) => Head {
            method: simple.method,
            target: simple.target,
            http10: simple.http10,
            len: simple.len,
            fields: Fields::Pairs(simple.fields()),
        },
        None => match read_head(buf, &mut slots, want_log) {
            HeadRead::Whole(head) => head,
            HeadRead::Verdict(verdict) => return verdict,
        },
    };
    let log_line = |buf: &[u8]| {
        want_log.then(|| LogFields {
            request_line: first_line(buf),
            ..LogFields::default()
        })
    };
    let Head {
        method,
        target: target_text,
        http10,
        len: head_len,
        fields: head_fields,
    } = head;
    if head_len > MAX_HEAD {
        return reject(Status::HEADERS_TOO_LARGE, log_line(buf));
    }
    let target = target_text;
    if target.len() > MAX_TARGET {
        return reject(Status::URI_TOO_LONG, log_line(buf));
    }
    let fields = match HeaderFields::collect(&head_fields, http10, want_log) {
        Ok(f) => f,
        Err(status) => return reject(status, log_line(buf)),
    };
    let log = want_log.then(|| LogFields {
        request_line: first_line(buf),
        referer: fields.referer.clone(),
        user_agent: fields.user_agent.clone(),
    });
    let body_allows_keep_alive =
        keep_alive::body_can_be_skipped(fields.framing, MAX_DISCARDED_BODY, fields.expect_continue);
    let refuse = |status: Status, keep_alive: bool| {
        Parsed::Rejected(Rejection {
            status,
            http10,
            head: method == "HEAD",
            keep_alive,
            head_len,
            body: fields.framing,
            log: log.clone(),
        })
    };
    let static_keep_alive = fields.keep_alive && body_allows_keep_alive;
    if !http10 && fields.host.is_none() {
        return refuse(Status::BAD_REQUEST, false);
    }
    // `OPTIONS *` asks about the server, not a resource (RFC 9112 3.2.4).
    let asterisk = method == "OPTIONS" && target == "*";
    let parsed = match asterisk {
        true => Ok(Target {
            key: String::new(),
            query: None,
            authority: None,
        }),
        false => parse_target(target),
    };
    let target = match parsed {
        Ok(t) => t,
        Err(PathError::Hidden) => return refuse(Status::FORBIDDEN, static_keep_alive),
        Err(_) => return refuse(Status::BAD_REQUEST, false),
    };
    // RFC 9112 3.2.2: an absolute-form target's authority wins over Host.
    let host = match target.authority.as_deref().map(str::as_bytes) {
        Some(authority) => match parse_authority(authority) {
            Ok(a) if !a.host.is_empty() => Some(a.host),
            _ => return refuse(Status::BAD_REQUEST, false),
        },
        None => fields.host.map(|a| a.host).filter(|h| !h.is_empty()),
    };
    let host: Option<Box<str>> = host.map(|h| String::from_utf8_lossy(h).into());
    let script = split_script(&target.key);
    // OPTIONS to a script is answered by the server, not the script.
    let names_script = script.is_some();
    let cgi = script
        .filter(|_| method != "OPTIONS")
        .map(|(script, path_info)| {
            Box::new(ScriptRequest {
                method: method.to_string(),
                script,
                path_info,
                request_uri: target_text.to_string(),
                headers: head_fields
                    .iter()
                    .map(|(name, value)| {
                        (
                            String::from_utf8_lossy(name).into_owned(),
                            String::from_utf8_lossy(value).into_owned(),
                        )
                    })
                    .collect(),
                expect_continue: fields.expect_continue,
            })
        });
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" if asterisk || names_script => Method::Options(ALLOW_SCRIPTS),
        "OPTIONS" => Method::Options(ALLOW_FILES),
        _ if cgi.is_some() => Method::Other,
        "POST" | "PUT" | "DELETE" | "PATCH" | "TRACE" | "CONNECT" => {
            return refuse(Status::METHOD_NOT_ALLOWED, static_keep_alive)
        }
        _ => return refuse(Status::NOT_IMPLEMENTED, false),
    };
    // A CGI request's body goes to the script, so it never stands in
    // the way of keeping the connection.
    let keep_alive = if cgi.is_some() {
        fields.keep_alive
    } else {
        static_keep_alive
    };
    Parsed::Request(Request {
        method,
        http10,
        http2: false,
        target,
        host,
        keep_alive,
        head_len,
        body: fields.framing,
        range: fields.range,
        gzip: gzip_accepted(&fields.accept_encoding),
        conditions: fields.conditions.boxed(),
        log,
        cgi,
        redirects: 0,
    })
}

/// A whole request head, read.
struct Head<'h, 'a> {
    method: &'a str,
    target: &'a str,
    http10: bool,
    /// Bytes of the head, the blank line included.
    len: usize,
    fields: Fields<'h, 'a>,
}

/// What httparse made of a head.
enum HeadRead<'h, 'a> {
    Whole(Head<'h, 'a>),
    /// Unfinished or refused: the verdict.
    Verdict(Parsed),
}

/// Reads a head that the fast path ([`simple_head`]) left with httparse.
fn read_head<'h, 'a>(
    buf: &'a [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'a>>],
    want_log: bool,
) -> HeadRead<'h, 'a> {
    let log_line = |buf: &[u8]| {
        want_log.then(|| LogFields {
            request_line: first_line(buf),
            ..LogFields::default()
        })
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadRead::Verdict(partial(buf, log_line)),
        Err(httparse::Error::TooManyHeaders) => {
            return HeadRead::Verdict(reject(Status::HEADERS_TOO_LARGE, log_line(buf)))
        }
        Err(httparse::Error::Version) => {
            let status = if names_other_http_version(buf) {
                Status::VERSION_NOT_SUPPORTED
            } else {
                Status::BAD_REQUEST
            };
            return HeadRead::Verdict(reject(status, log_line(buf)));
        }
        Err(_) => return HeadRead::Verdict(reject(Status::BAD_REQUEST, log_line(buf))),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return HeadRead::Verdict(reject(Status::BAD_REQUEST, log_line(buf)));
    };
    HeadRead::Whole(Head {
        method,
        target,
        http10: version == 0,
        len,
        fields: Fields::Parsed(req.headers),
    })
}

/// A head that is not complete yet: fine unless it is already too long.
fn partial(buf: &[u8], log_line: impl Fn(&[u8]) -> Option<LogFields>) -> Parsed {
    match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > MAX_TARGET + 32 => reject(Status::URI_TOO_LONG, log_line(buf)),
        Some(end) if end > MAX_TARGET + 32 => reject(Status::URI_TOO_LONG, log_line(buf)),
        _ if buf.len() > MAX_HEAD => reject(Status::HEADERS_TOO_LARGE, log_line(buf)),
        _ => Parsed::Partial,
    }
}

/// True when the request line ends in `HTTP/x.y` with a version other than 1.x.
fn names_other_http_version(buf: &[u8]) -> bool {
    let line = first_line(buf);
    let Some(version) = line.rsplit(' ').next() else {
        return false;
    };
    let v = version.as_bytes();
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
        && v[5] != b'1'
}

/// The request line, for logs (lossy, control characters replaced).
fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(MAX_TARGET + 32);
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| if c.is_control() || c == '"' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::accept_encoding::Gzip;
    use crate::http::header_fields::Field;

    fn request(raw: &str) -> Request {
        match parse(raw.as_bytes(), true) {
            Parsed::Request(r) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// The host a script is told (SERVER_NAME).
    fn server_name(r: &Request) -> Option<String> {
        assert!(r.cgi.is_some(), "a script's request");
        r.host.as_deref().map(String::from)
    }

    fn status(raw: &str) -> (u16, bool) {
        match parse(raw.as_bytes(), false) {
            Parsed::Rejected(r) => (r.status.code, r.keep_alive),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let r = request("GET /a/b.html?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\nrest");
        assert_eq!(r.method, Method::Get);
        assert!(r.keep_alive);
        assert!(!r.http10);
        assert_eq!(r.target.key, "a/b.html");
        assert_eq!(r.target.query.as_deref(), Some("x=1"));
        assert_eq!(r.head_len, 54);
        let log = r.log.expect("log fields");
        assert_eq!(log.request_line, "GET /a/b.html?x=1 HTTP/1.1");
        assert_eq!(log.user_agent.as_deref(), Some("t"));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!request("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!request("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!request("GET / HTTP/1.1\r\nHost: h\r\nConnection: x, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn partial_heads_wait() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: h\r\n", false),
            Parsed::Partial
        );
        assert_eq!(parse(b"", false), Parsed::Partial);
    }

    #[test]
    fn refusals() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), (400, false));
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            (400, false)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
            (405, true)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (405, false)
        );
        assert_eq!(status("FROB / HTTP/1.1\r\nHost: h\r\n\r\n"), (501, false));
        assert_eq!(status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), (400, false));
        assert_eq!(status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), (505, false));
        assert_eq!(status("GET / FOO/1.1\r\nHost: h\r\n\r\n"), (400, false));
        assert_eq!(
            status("GET /../x HTTP/1.1\r\nHost: h\r\n\r\n"),
            (400, false)
        );
        assert_eq!(status("GET /.env HTTP/1.1\r\nHost: h\r\n\r\n"), (403, true));
        assert_eq!(status("GET /%00 HTTP/1.1\r\nHost: h\r\n\r\n"), (400, false));
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (400, false)
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"),
            (400, false)
        );
        assert_eq!(status("garbage\r\n\r\n"), (400, false));
    }

    #[test]
    fn options_is_answered_with_allow() {
        let r = request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Options(ALLOW_SCRIPTS));
        let r = request("OPTIONS /index.html HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Options(ALLOW_FILES));
        let r = request("OPTIONS /cgi-bin/a.cgi/x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Options(ALLOW_SCRIPTS));
        assert!(r.cgi.is_none(), "the server answers, not the script");
        let r = request("OPTIONS /a.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab");
        assert_eq!(r.body, Framing::Length(2));
        assert!(r.keep_alive, "a small body is skipped");
    }

    #[test]
    fn host_is_validated() {
        for host in [
            "user@h", "h/path", "a, b", "a,b", "h:x", "h:65536", "h:1:2", "[::1", "",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(status(&raw), (400, false), "Host: {host:?}");
        }
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            (400, false)
        );
        assert_eq!(
            status("GET / HTTP/1.0\r\nHost: user@h\r\n\r\n"),
            (400, false)
        );
        let host = |raw: &str| server_name(&request(raw));
        assert_eq!(
            host("GET /a.cgi HTTP/1.1\r\nHost: Example.org:8080\r\n\r\n").as_deref(),
            Some("Example.org")
        );
        assert_eq!(host("GET /a.cgi HTTP/1.0\r\n\r\n"), None);
        assert_eq!(host("GET /a.cgi HTTP/1.0\r\nHost:\r\n\r\n"), None);
        assert_eq!(
            host("GET /a.cgi HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").as_deref(),
            Some("::1")
        );
    }

    #[test]
    fn absolute_form_authority_wins_over_host() {
        let r = request("GET http://a.example:81/p.cgi HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(server_name(&r).as_deref(), Some("a.example"));
        let r = request("GET http://a.example:81/p?x HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(
            (r.target.key.as_str(), r.target.query.as_deref()),
            ("p", Some("x"))
        );
        let r = request("GET http://h?x=/y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            (r.target.key.as_str(), r.target.query.as_deref()),
            ("", Some("x=/y"))
        );
        for target in ["http://user@h/", "http://h:x/", "http://a,b/"] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(status(&raw), (400, false), "{target}");
        }
        // HTTP/1.1 still needs its Host line.
        assert_eq!(status("GET http://h/ HTTP/1.1\r\n\r\n"), (400, false));
    }

    #[test]
    fn only_a_single_final_chunked_coding_is_implemented() {
        let post = |te: &str| {
            format!("POST /x.cgi HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n")
        };
        for te in [
            "gzip, chunked",
            "chunked, chunked",
            "identity",
            "gzip",
            "chunked, gzip",
            "chunked;q=1",
            "",
        ] {
            assert_eq!(status(&post(te)), (501, false), "Transfer-Encoding: {te:?}");
        }
        assert_eq!(
            status("POST /x.cgi HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (501, false)
        );
        assert_eq!(request(&post("Chunked")).body, Framing::Chunked);
        assert_eq!(request(&post("chunked,")).body, Framing::Chunked);
        assert_eq!(
            status("POST /x.cgi HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            (400, false)
        );
        assert_eq!(
            status("POST /x.cgi HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (400, false)
        );
    }

    #[test]
    fn size_limits() {
        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_TARGET + 1)
        );
        assert_eq!(status(&long), (414, false));
        let unfinished = format!("GET /{}", "a".repeat(MAX_TARGET + 100));
        assert_eq!(status(&unfinished), (414, false));
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(status(&big), (431, false));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
            (431, false)
        );
    }

    #[test]
    fn log_only_fields_are_skipped_without_the_log() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\nReferer: f\r\n\r\n";
        let Parsed::Request(r) = parse(raw, false) else {
            panic!("expected a request");
        };
        assert_eq!(r.log, None);
    }

    #[test]
    fn accept_encoding_fields_are_read_together() {
        let none = request("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(none.gzip, Gzip::Refused);
        let one = request("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: br, gzip\r\n\r\n");
        assert_eq!(one.gzip, Gzip::Accepted);
        let two = request(
            "GET / HTTP/1.1\r\nHost: h\r\naccept-encoding: *\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
        );
        assert_eq!(two.gzip, Gzip::Refused);
    }

    #[test]
    fn fields_are_told_apart_by_name_in_any_case() {
        let r = request(
            "GET / HTTP/1.1\r\nHOST: h\r\nif-MATCH: \"a\"\r\nIf-None-Match: \"b\"\r\n\
             If-Unmodified-Since: u\r\nIF-MODIFIED-SINCE: m\r\nIf-Range: r\r\n\
             If-Matches: x\r\nRange: bytes=0-1\r\nREFERER: f\r\nuser-agent: a\r\n\r\n",
        );
        let c = r.conditions.expect("conditions");
        assert_eq!(c.if_match.as_deref(), Some("\"a\""));
        assert_eq!(c.if_none_match.as_deref(), Some("\"b\""));
        assert_eq!(c.if_unmodified_since.as_deref(), Some("u"));
        assert_eq!(c.if_modified_since.as_deref(), Some("m"));
        assert_eq!(c.if_range.as_deref(), Some("r"));
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        let log = r.log.expect("log fields");
        assert_eq!(log.referer.as_deref(), Some("f"));
        assert_eq!(log.user_agent.as_deref(), Some("a"));
        for name in [
            "Hosts",
            "Connections",
            "Content-Lengths",
            "X-Host",
            "Range2",
        ] {
            assert_eq!(Field::of(name.as_bytes()), Field::Other, "{name}");
        }
        assert_eq!(Field::of(b"TRANSFER-encoding"), Field::TransferEncoding);
        assert_eq!(Field::of(b"Accept-Encoding"), Field::AcceptEncoding);
        assert_eq!(Field::of(b"Content-Length"), Field::ContentLength);
        assert_eq!(Field::of(b"Expect"), Field::Expect);
        assert_eq!(Field::of(b"Connection"), Field::Connection);
    }
}

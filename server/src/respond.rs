//! Turning a request and a cache entry into a response on a connection's
//! output queue: 200, 206 (one range, or `multipart/byteranges`), 304,
//! 412, 416, 301 for directories, directory listings, and the error
//! pages.

use std::rc::Rc;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::cache::{Content, Entry, FileEntry, Found};
use crate::http::body::{end_head, BodyEncoder, BodyKind};

use crate::http::conditional::{evaluate, parse_date, Conditions, Validators, Verdict};
use crate::http::error_page::{self, ErrorTo};
use crate::http::head_writer::{begin, Stamp};
use crate::http::mime::content_type;
use crate::http::multipart::{self, new_boundary, Multipart};
use crate::http::range::{evaluate_range, ByteRange, RangeOutcome};
use crate::http::request::{Method, Rejection, Request, ALLOW_FILES};
use crate::http::status::Status;
use crate::output::Output;

/// Characters escaped when a path goes back into a `Location` header.
const LOCATION: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// What was sent, for the access log and the connection's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: Status,
    pub(crate) keep_alive: bool,
    pub(crate) body_bytes: u64,
}

/// Which of a file's representations `--gzip-static` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// The file as it is; no `Vary` (the option is off).
    Identity,
    /// The file as it is, with `Vary: Accept-Encoding`.
    IdentityVary,
    /// The entry is `f.gz` answering for `f`: `f`'s media type,
    /// `Content-Encoding: gzip` and `Vary: Accept-Encoding`.
    Gzip,
}

/// Queues the response to `req` from `entry`.
pub(crate) fn respond(
    out: &mut Output,
    req: &Request,
    entry: &Entry,
    coding: Coding,
    stamp: Stamp<'_>,
) -> Reply {
    let to = req.error_to(req.keep_alive);
    match &entry.found {
        Found::File(file) => {
            let file = Representation {
                file,
                coding,
                key: &req.target.key,
            };
            respond_file(out, req, file, stamp)
        }
        Found::Listing(page) => dynamic_shared(out, req, "text/html; charset=utf-8", page, stamp),
        Found::Directory => {
            let extra = format!("Location: {}\r\n", location_path(req, true));
            error(out, &to, Status::MOVED_PERMANENTLY, &extra, stamp)
        }
        Found::Missing => error(out, &to, Status::NOT_FOUND, "", stamp),
        Found::Forbidden => error(out, &to, Status::FORBIDDEN, "", stamp),
        Found::Failed => error(out, &to, Status::INTERNAL_ERROR, "", stamp),
        Found::Unavailable => error(
            out,
            &to,
            Status::SERVICE_UNAVAILABLE,
            "Retry-After: 1\r\n",
            stamp,
        ),
    }
}

/// A cached file and how it goes out.
#[derive(Clone, Copy)]
struct Representation<'a> {
    file: &'a FileEntry,
    coding: Coding,
    /// The request's key: `f`, whose media type a gzip answer carries.
    key: &'a str,
}

impl Representation<'_> {
    /// The media type of the representation.
    fn content_type(&self) -> String {
        match self.coding {
            Coding::Gzip => content_type(self.key),
            _ => self.file.headers.content_type().to_string(),
        }
    }

    /// Appends the file's header lines: all of them, or all but
    /// `Content-Type` (a multipart body has its own).
    fn push_lines(&self, head: &mut Vec<u8>, with_content_type: bool) {
        let headers = &self.file.headers;
        match self.coding {
            Coding::Identity if with_content_type => head.extend_from_slice(&headers.lines),
            Coding::Identity => head.extend_from_slice(headers.lines_but_content_type()),
            Coding::IdentityVary | Coding::Gzip => {
                if with_content_type {
                    let line = format!("Content-Type: {}\r\n", self.content_type());
                    head.extend_from_slice(line.as_bytes());
                }
                head.extend_from_slice(headers.lines_but_content_type());
                if self.coding == Coding::Gzip {
                    head.extend_from_slice(b"Content-Encoding: gzip\r\n");
                }
                head.extend_from_slice(b"Vary: Accept-Encoding\r\n");
            }
        }
    }
}

fn respond_file(out: &mut Output, req: &Request, rep: Representation, stamp: Stamp<'_>) -> Reply {
    let file = rep.file;
    // In-memory bodies are sent as they are, whatever the metadata says.
    let size = match &file.content {
        Content::Inline(bytes) => bytes.len() as u64,
        Content::Descriptor(_) => file.meta.size,
    };
    let validators = Validators {
        etag: &file.headers.etag,
        mtime_secs: file.meta.mtime_secs,
    };
    let conditions = req.conditions.as_deref().unwrap_or(&Conditions::NONE);
    let range_applies = match evaluate(conditions, validators, || {
        parse_date(stamp.date).unwrap_or(i64::MAX)
    }) {
        Verdict::Proceed { range_applies } => range_applies,
        Verdict::NotModified => return not_modified(out, req, rep, stamp),
        Verdict::PreconditionFailed => {
            let to = req.error_to(req.keep_alive);
            return error(out, &to, Status::PRECONDITION_FAILED, "", stamp);
        }
    };
    let range = req.range.as_deref().filter(|_| range_applies);
    let ranges = match evaluate_range(range, size) {
        RangeOutcome::Full => return whole_file(out, req, rep, size, stamp),
        RangeOutcome::Partial(ranges) => ranges,
        RangeOutcome::Unsatisfiable => {
            let extra = format!("Content-Range: bytes */{size}\r\n");
            let to = req.error_to(req.keep_alive);
            return error(out, &to, Status::RANGE_NOT_SATISFIABLE, &extra, stamp);
        }
    };
    // 206: one range of bytes, or several in a multipart body.
    let mut head = Vec::with_capacity(320);
    begin(&mut head, Status::PARTIAL_CONTENT, stamp);
    let [one] = ranges[..] else {
        let boundary = new_boundary();
        let frame = multipart::frame(&ranges, size, &rep.content_type(), &boundary);
        head.extend_from_slice(frame.content_type_line.as_bytes());
        rep.push_lines(&mut head, false);
        let kind = body_kind(req, frame.length);
        let (body, keep_alive) =
            end_head(&mut head, kind, req.keep_alive, req.ends_body_by_closing());
        out.push_owned(head);
        return Reply {
            status: Status::PARTIAL_CONTENT,
            keep_alive,
            body_bytes: queue_multipart(body, &frame, file, out),
        };
    };
    rep.push_lines(&mut head, true);
    let range = format!("Content-Range: bytes {}-{}/{size}\r\n", one.start, one.end);
    head.extend_from_slice(range.as_bytes());
    let kind = body_kind(req, one.len());
    let (mut body, keep_alive) =
        end_head(&mut head, kind, req.keep_alive, req.ends_body_by_closing());
    out.push_owned(head);
    Reply {
        status: Status::PARTIAL_CONTENT,
        keep_alive,
        body_bytes: queue_range(&mut body, file, one, out),
    }
}

/// 200 with the whole file. The head of the most common case (an
/// HTTP/1.1 keep-alive GET of the file as it is) is built once a second
/// and kept with the file ([`HeadMemo`]); any other is built each time.
fn whole_file(
    out: &mut Output,
    req: &Request,
    rep: Representation,
    size: u64,
    stamp: Stamp<'_>,
) -> Reply {
    // An HTTP/2 stream's answer is the same head (its end is the
    // stream's, and the fields HTTP/1.1 alone has are not in it).
    let memo = (req.method == Method::Get
        && (req.keep_alive || req.http2)
        && !req.http10
        && rep.coding == Coding::Identity)
        .then_some(&rep.file.headers.ok_head);
    let kind = body_kind(req, size);
    let (mut body, keep_alive) = match memo.and_then(|m| m.get(stamp)) {
        Some(head) => {
            let len = head.len();
            out.push_shared(head, 0, len);
            (BodyEncoder::Length(size), req.keep_alive)
        }
        None => {
            let mut head = Vec::with_capacity(320);
            begin(&mut head, Status::OK, stamp);
            rep.push_lines(&mut head, true);
            // A head to keep is the keep-alive one.
            let keep = req.keep_alive || memo.is_some();
            let (body, keep_alive) = end_head(&mut head, kind, keep, req.ends_body_by_closing());
            let keep_alive = keep_alive && req.keep_alive;
            match memo {
                Some(memo) => {
                    let head: Rc<[u8]> = head.into();
                    memo.keep(stamp, Rc::clone(&head));
                    let len = head.len();
                    out.push_shared(head, 0, len);
                }
                None => out.push_owned(head),
            }
            (body, keep_alive)
        }
    };
    let body_bytes = if size > 0 {
        queue_range(
            &mut body,
            rep.file,
            ByteRange {
                start: 0,
                end: size - 1,
            },
            out,
        )
    } else {
        0
    };
    Reply {
        status: Status::OK,
        keep_alive,
        body_bytes,
    }
}

/// 304: the file's validators, no body.
fn not_modified(out: &mut Output, req: &Request, rep: Representation, stamp: Stamp<'_>) -> Reply {
    let mut head = Vec::with_capacity(320);
    begin(&mut head, Status::NOT_MODIFIED, stamp);
    rep.push_lines(&mut head, true);
    let (_, keep_alive) = end_head(
        &mut head,
        BodyKind::NoBody,
        req.keep_alive,
        req.ends_body_by_closing(),
    );
    out.push_owned(head);
    Reply {
        status: Status::NOT_MODIFIED,
        keep_alive,
        body_bytes: 0,
    }
}

/// Queues the bytes of `range` of the file through `body`: shared cache
/// bytes, or a file range for `sendfile`.
fn queue_range(
    body: &mut BodyEncoder,
    file: &FileEntry,
    range: ByteRange,
    out: &mut Output,
) -> u64 {
    let end = range.end.saturating_add(1);
    match &file.content {
        Content::Inline(bytes) => {
            let end = (end as usize).min(bytes.len());
            out.push_body_shared(body, bytes.clone(), range.start as usize, end)
        }
        Content::Descriptor(fd) => out.push_body_file(body, fd.clone(), range.start, end),
    }
}

/// Queues a multipart body: each part's head, then its bytes, then the
/// closing delimiter. Returns the body bytes queued.
fn queue_multipart(
    mut body: BodyEncoder,
    frame: &Multipart,
    file: &FileEntry,
    out: &mut Output,
) -> u64 {
    let mut sent = 0;
    for (head, range) in &frame.parts {
        sent += out.push_body(&mut body, head);
        sent += queue_range(&mut body, file, *range, out);
    }
    sent + out.push_body(&mut body, &frame.closing)
}

/// A body of `length` bytes goes out for a GET; a HEAD gets its length
/// only.
fn body_kind(req: &Request, length: u64) -> BodyKind {
    match req.method {
        Method::Get => BodyKind::Body(Some(length)),
        _ => BodyKind::HeadOnly(Some(length)),
    }
}

/// Queues a generated (not cached) 200 response, never cached by clients.
pub(crate) fn dynamic(
    out: &mut Output,
    req: &Request,
    content_type: &str,
    body: Vec<u8>,
    stamp: Stamp<'_>,
) -> Reply {
    let len = body.len();
    dynamic_with(out, req, content_type, len, stamp, |out| {
        out.push_owned(body)
    })
}

/// [`dynamic`] for a body kept elsewhere (a cached listing page): the
/// queue shares its bytes, so slow readers of one page hold one copy.
pub(crate) fn dynamic_shared(
    out: &mut Output,
    req: &Request,
    content_type: &str,
    body: &Rc<[u8]>,
    stamp: Stamp<'_>,
) -> Reply {
    let len = body.len();
    dynamic_with(out, req, content_type, len, stamp, |out| {
        out.push_shared(Rc::clone(body), 0, len)
    })
}

/// The head of a generated 200 of `len` bytes; `queue_body` queues the
/// body unless the request wants none.
fn dynamic_with(
    out: &mut Output,
    req: &Request,
    content_type: &str,
    len: usize,
    stamp: Stamp<'_>,
    queue_body: impl FnOnce(&mut Output),
) -> Reply {
    let mut head = Vec::with_capacity(256);
    begin(&mut head, Status::OK, stamp);
    head.extend_from_slice(
        format!("Content-Type: {content_type}\r\nCache-Control: no-store\r\n").as_bytes(),
    );
    let kind = body_kind(req, len as u64);
    let (encoder, keep_alive) =
        end_head(&mut head, kind, req.keep_alive, req.ends_body_by_closing());
    out.push_owned(head);
    let body_bytes = match encoder {
        BodyEncoder::Empty => 0,
        _ => {
            queue_body(out);
            len as u64
        }
    };
    Reply {
        status: Status::OK,
        keep_alive,
        body_bytes,
    }
}

/// Queues the answer to `OPTIONS`: 200, `Allow` and an empty body.
pub(crate) fn options(out: &mut Output, req: &Request, allow: &str, stamp: Stamp<'_>) -> Reply {
    let mut head = Vec::with_capacity(192);
    begin(&mut head, Status::OK, stamp);
    head.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes());
    let (_, keep_alive) = end_head(
        &mut head,
        BodyKind::Body(Some(0)),
        req.keep_alive,
        req.ends_body_by_closing(),
    );
    out.push_owned(head);
    Reply {
        status: Status::OK,
        keep_alive,
        body_bytes: 0,
    }
}

/// The request's path and query as a `Location` has them: the path
/// percent-encoded, with a final `/` when it names a `directory`.
fn location_path(req: &Request, directory: bool) -> String {
    let mut location = String::from("/");
    location.extend(utf8_percent_encode(&req.target.key, LOCATION));
    if directory && !location.ends_with('/') {
        location.push('/');
    }
    if let Some(q) = &req.target.query {
        location.push('?');
        location.push_str(q);
    }
    location
}

/// Queues the redirect of a plain HTTP request to the same resource over
/// HTTPS (`--redirect-to-https`): `https://HOST[:PORT]/path?query`, the
/// port left out when it is 443. 301 for GET and HEAD; 308 for other
/// methods, which keeps the method and the body (RFC 9110 15.4.9) where
/// a 301 lets clients turn a POST into a GET.
pub(crate) fn to_https(
    out: &mut Output,
    req: &Request,
    host: &str,
    port: u16,
    keep_alive: bool,
    stamp: Stamp<'_>,
) -> Reply {
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    let port = match port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let extra = format!(
        "Location: https://{host}{port}{}\r\n",
        location_path(req, false)
    );
    let status = match req.method {
        Method::Get | Method::Head => Status::MOVED_PERMANENTLY,
        _ => Status::PERMANENT_REDIRECT,
    };
    error(out, &req.error_to(keep_alive), status, &extra, stamp)
}

/// Queues the error response for a refused request.
pub(crate) fn reject(out: &mut Output, rejection: &Rejection, stamp: Stamp<'_>) -> Reply {
    let extra = if rejection.status == Status::METHOD_NOT_ALLOWED {
        format!("Allow: {ALLOW_FILES}\r\n")
    } else {
        String::new()
    };
    error(out, &rejection.error_to(), rejection.status, &extra, stamp)
}

/// Queues the 400 for plain HTTP sent to a TLS port; the connection
/// closes after it.
pub(crate) fn plain_http_to_tls_port(out: &mut Output, stamp: Stamp<'_>) -> Reply {
    let status = Status::BAD_REQUEST;
    let mut head = Vec::with_capacity(512);
    let page = error_page::plain_http_to_tls_page();
    let to = ErrorTo::UNKNOWN;
    let body_bytes = error_page::error_saying(&mut head, &to, status, "", stamp, &page);
    out.push_owned(head);
    Reply {
        status,
        keep_alive: false,
        body_bytes,
    }
}

/// Queues an error page to the client `to` describes.
pub(crate) fn error(
    out: &mut Output,
    to: &ErrorTo,
    status: Status,
    extra: &str,
    stamp: Stamp<'_>,
) -> Reply {
    let mut head = Vec::with_capacity(512);
    let body_bytes = error_page::error(&mut head, to, status, extra, stamp);
    out.push_owned(head);
    Reply {
        status,
        keep_alive: to.keep_alive,
        body_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head_writer::AddedLines;
    use crate::http::parse::parse;
    use crate::http::request::Parsed;
    use crate::output::written;
    use protocol::FileMeta;

    const DATE: &str = "Mon, 30 Nov 2026 10:00:00 GMT";
    const NEXT_SECOND: &str = "Mon, 30 Nov 2026 10:00:01 GMT";

    fn file() -> FileEntry {
        let meta = FileMeta {
            size: 5,
            mtime_secs: 1_700_000_000,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        FileEntry {
            meta,
            headers: crate::http::file_headers::FileHeaders::new("text/plain", &meta),
            content: Content::Inline(Rc::from(&b"hello"[..])),
        }
    }

    fn response(file: &FileEntry, raw: &str, coding: Coding, date: &str) -> (String, Reply) {
        response_stamped(file, raw, coding, Stamp::plain(date))
    }

    fn response_stamped(
        file: &FileEntry,
        raw: &str,
        coding: Coding,
        stamp: Stamp<'_>,
    ) -> (String, Reply) {
        let req = match parse(raw.as_bytes(), false) {
            Parsed::Request(r) => r,
            other => panic!("expected a request, got {other:?}"),
        };
        let mut out = Output::default();
        let rep = Representation {
            file,
            coding,
            key: "a.txt",
        };
        let reply = respond_file(&mut out, &req, rep, stamp);
        (written(&mut out), reply)
    }

    const REQUESTS: [&str; 7] = [
        "GET /a.txt HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "HEAD /a.txt HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a.txt HTTP/1.0\r\n\r\n",
        "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\n\r\n",
    ];

    #[test]
    fn a_kept_head_answers_exactly_as_a_head_built_afresh() {
        for coding in [Coding::Identity, Coding::IdentityVary, Coding::Gzip] {
            for raw in REQUESTS {
                let fresh = response(&file(), raw, coding, DATE);
                let primed = file();
                response(&primed, REQUESTS[0], coding, DATE);
                assert_eq!(
                    response(&primed, raw, coding, DATE),
                    fresh,
                    "{coding:?} {raw:?}"
                );
            }
        }
    }

    #[test]
    fn the_common_head_is_kept_for_its_second_only() {
        let file = file();
        let (first, reply) = response(&file, REQUESTS[0], Coding::Identity, DATE);
        assert_eq!(reply.status, Status::OK);
        assert!(reply.keep_alive);
        assert_eq!(reply.body_bytes, 5);
        assert!(first.contains(&format!("Date: {DATE}\r\n")), "{first}");
        assert!(first.ends_with("\r\n\r\nhello"), "{first}");
        assert!(
            file.headers.ok_head.get(Stamp::plain(DATE)).is_some(),
            "kept"
        );
        let (later, _) = response(&file, REQUESTS[0], Coding::Identity, NEXT_SECOND);
        assert!(
            later.contains(&format!("Date: {NEXT_SECOND}\r\n")),
            "{later}"
        );
        assert_eq!(later.replace(NEXT_SECOND, DATE), first);
    }

    #[test]
    fn a_kept_head_fits_in_what_the_cache_counts_for_it() {
        let hsts = "max-age=31536000; includeSubDomains; preload";
        for added in [AddedLines::new(None), AddedLines::new(Some(hsts))] {
            for tls in [false, true] {
                let file = file();
                let stamp = added.stamp(DATE, tls);
                response_stamped(&file, REQUESTS[0], Coding::Identity, stamp);
                let head = file.headers.ok_head.get(stamp).expect("kept");
                // The longest Content-Length has 20 digits, this one 1; the
                // date is kept beside the head, whose allocation starts
                // with two reference counts; glibc adds up to 24 bytes to
                // each allocation.
                let worst =
                    head.len() + 19 + 2 * std::mem::size_of::<usize>() + DATE.len() + 2 * 24;
                let counted =
                    file.headers.lines.len() + crate::cache::KEPT_HEAD_OVERHEAD + added.longest();
                assert!(worst <= counted, "{worst} bytes, {counted} counted");
                let plain = file.headers.ok_head.get(added.stamp(DATE, false));
                assert_eq!(plain.is_some(), !stamp.adds_lines(), "kept per added lines");
            }
        }
    }

    #[test]
    fn only_the_common_case_is_kept() {
        // REQUESTS[5] is a plain 200 too (its condition holds): kept.
        for raw in REQUESTS[1..5].iter().chain(&REQUESTS[6..]) {
            let file = file();
            response(&file, raw, Coding::Identity, DATE);
            assert!(
                file.headers.ok_head.get(Stamp::plain(DATE)).is_none(),
                "{raw:?}"
            );
        }
        let file = file();
        response(&file, REQUESTS[0], Coding::IdentityVary, DATE);
        assert!(
            file.headers.ok_head.get(Stamp::plain(DATE)).is_none(),
            "with Vary"
        );
    }
}

//! Turning a request and a cache entry into a response on a connection's
//! output queue: 200, 206, 304, 416, 301 for directories, and the error
//! pages.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::cache::{Content, Entry, FileEntry, Found};
use crate::http::body::{end_head, BodyEncoder, BodyKind};
use crate::http::conditional::{evaluate_range, not_modified, RangeOutcome};
use crate::http::request::{Method, Rejection, Request};
use crate::http::response::{self, begin, ErrorTo};
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
pub struct Reply {
    pub status: Status,
    pub keep_alive: bool,
    pub body_bytes: u64,
}

/// Queues the response to `req` from `entry`.
pub fn respond(out: &mut Output, req: &Request, entry: &Entry, date: &str) -> Reply {
    let to = req.error_to(req.keep_alive);
    match &entry.found {
        Found::File(file) => respond_file(out, req, file, date),
        Found::Directory => {
            let mut location = String::from("/");
            location.extend(utf8_percent_encode(&req.target.key, LOCATION));
            if !location.ends_with('/') {
                location.push('/');
            }
            if let Some(q) = &req.target.query {
                location.push('?');
                location.push_str(q);
            }
            let extra = format!("Location: {location}\r\n");
            error(out, &to, Status::MOVED_PERMANENTLY, &extra, date)
        }
        Found::Missing => error(out, &to, Status::NOT_FOUND, "", date),
        Found::Forbidden => error(out, &to, Status::FORBIDDEN, "", date),
        Found::Failed => error(out, &to, Status::INTERNAL_ERROR, "", date),
    }
}

fn respond_file(out: &mut Output, req: &Request, file: &FileEntry, date: &str) -> Reply {
    // In-memory bodies are sent as they are, whatever the metadata says.
    let size = match &file.content {
        Content::Inline(bytes) => bytes.len() as u64,
        Content::Descriptor(_) => file.meta.size,
    };
    let mut head = Vec::with_capacity(320);
    if not_modified(
        req.if_none_match.as_deref(),
        req.if_modified_since.as_deref(),
        &file.headers.etag,
        file.meta.mtime_secs,
    ) {
        begin(&mut head, Status::NOT_MODIFIED, date);
        head.extend_from_slice(&file.headers.lines);
        let (_, keep_alive) = end_head(&mut head, BodyKind::NoBody, req.keep_alive, req.http10);
        out.push_owned(head);
        return Reply {
            status: Status::NOT_MODIFIED,
            keep_alive,
            body_bytes: 0,
        };
    }
    let (status, start, end) = match evaluate_range(req.range.as_deref(), size) {
        RangeOutcome::Full => (Status::OK, 0, size),
        RangeOutcome::Partial { start, end } => (Status::PARTIAL_CONTENT, start, end + 1),
        RangeOutcome::Unsatisfiable => {
            let extra = format!("Content-Range: bytes */{size}\r\n");
            let to = req.error_to(req.keep_alive);
            return error(out, &to, Status::RANGE_NOT_SATISFIABLE, &extra, date);
        }
    };
    begin(&mut head, status, date);
    head.extend_from_slice(&file.headers.lines);
    if status == Status::PARTIAL_CONTENT {
        head.extend_from_slice(
            format!("Content-Range: bytes {start}-{}/{size}\r\n", end - 1).as_bytes(),
        );
    }
    let kind = body_kind(req, end - start);
    let (mut body, keep_alive) = end_head(&mut head, kind, req.keep_alive, req.http10);
    out.push_owned(head);
    let body_bytes = match &file.content {
        Content::Inline(bytes) => {
            let end = (end as usize).min(bytes.len());
            body.encode_shared(bytes.clone(), start as usize, end, out)
        }
        Content::Descriptor(fd) => body.encode_file(fd.clone(), start, end, out),
    };
    Reply {
        status,
        keep_alive,
        body_bytes,
    }
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
pub fn dynamic(
    out: &mut Output,
    req: &Request,
    content_type: &str,
    body: Vec<u8>,
    date: &str,
) -> Reply {
    let mut head = Vec::with_capacity(256);
    begin(&mut head, Status::OK, date);
    head.extend_from_slice(
        format!("Content-Type: {content_type}\r\nCache-Control: no-store\r\n").as_bytes(),
    );
    let kind = body_kind(req, body.len() as u64);
    let (encoder, keep_alive) = end_head(&mut head, kind, req.keep_alive, req.http10);
    out.push_owned(head);
    let body_bytes = match encoder {
        BodyEncoder::Empty => 0,
        _ => {
            let n = body.len() as u64;
            out.push_owned(body);
            n
        }
    };
    Reply {
        status: Status::OK,
        keep_alive,
        body_bytes,
    }
}

/// Queues the error response for a refused request.
pub fn reject(out: &mut Output, rejection: &Rejection, date: &str) -> Reply {
    let extra = if rejection.status == Status::METHOD_NOT_ALLOWED {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    error(out, &rejection.error_to(), rejection.status, extra, date)
}

/// Queues an error page to the client `to` describes.
pub fn error(out: &mut Output, to: &ErrorTo, status: Status, extra: &str, date: &str) -> Reply {
    let mut head = Vec::with_capacity(512);
    let body_bytes = response::error(&mut head, to, status, extra, date);
    out.push_owned(head);
    Reply {
        status,
        keep_alive: to.keep_alive,
        body_bytes,
    }
}

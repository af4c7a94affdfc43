//! Parsing the header block a CGI script writes before its body
//! (RFC 3875 section 6): `Status`, `Content-Type`, `Location` and any
//! other header fields, ended by a blank line.

use crate::http::status::Status;

/// The largest header block accepted from a script.
pub(crate) const MAX_SCRIPT_HEAD: usize = 64 * 1024;
/// The most header fields accepted from a script.
const MAX_FIELDS: usize = 100;

/// Headers the server sets itself; a script's copies are dropped.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "date",
    "server",
    "proxy-connection",
];

/// What the script asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScriptResponse {
    /// A document: status, headers, then the body.
    Document {
        status: u16,
        reason: String,
        content_length: Option<u64>,
        headers: Vec<(String, String)>,
    },
    /// A path on this server, to be served in place of the script's
    /// output (RFC 3875 6.2.2).
    LocalRedirect { path: String },
}

/// The result of looking at the output buffered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadParse {
    Partial,
    /// The response and the bytes of output the header block used.
    Complete(ScriptResponse, usize),
    Invalid(&'static str),
}

/// Parses the header block at the start of `buf`.
pub(crate) fn parse_script_head(buf: &[u8]) -> HeadParse {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let (used, fields) = match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((used, fields))) => (used, fields),
        Ok(httparse::Status::Partial) if buf.len() > MAX_SCRIPT_HEAD => {
            return HeadParse::Invalid("header block too large")
        }
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(_) => return HeadParse::Invalid("malformed header block"),
    };
    let mut status: Option<(u16, String)> = None;
    let mut location: Option<String> = None;
    let mut content_type = false;
    let mut content_length = None;
    let mut headers = Vec::with_capacity(fields.len());
    for field in fields.iter() {
        let name = field.name;
        let Ok(value) = std::str::from_utf8(field.value) else {
            return HeadParse::Invalid("header value is not text");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            match parse_status(value) {
                Some(s) => status = Some(s),
                None => return HeadParse::Invalid("malformed Status"),
            }
        } else if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_string());
            headers.push(("Location".to_string(), value.to_string()));
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(n) => content_length = Some(n),
                Err(_) => return HeadParse::Invalid("malformed Content-Length"),
            }
        } else if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        } else {
            content_type |= name.eq_ignore_ascii_case("content-type");
            headers.push((name.to_string(), value.to_string()));
        }
    }
    if let Some(path) = location.as_deref().filter(|p| is_local_path(p)) {
        if status.is_none() {
            return HeadParse::Complete(
                ScriptResponse::LocalRedirect {
                    path: path.to_string(),
                },
                used,
            );
        }
    }
    let (code, reason) = match (status, &location) {
        (Some(s), _) => s,
        (None, Some(_)) => (302, "Found".to_string()),
        (None, None) if content_type => (200, Status::OK.reason.to_string()),
        (None, None) => return HeadParse::Invalid("no Content-Type, Location or Status"),
    };
    HeadParse::Complete(
        ScriptResponse::Document {
            status: code,
            reason,
            content_length,
            headers,
        },
        used,
    )
}

/// A `Location` the server follows itself (RFC 3875 6.2.2): a path with
/// one leading `/`. `//host/path` is a network-path reference to another
/// host, which goes to the client like any other URI.
fn is_local_path(location: &str) -> bool {
    location.starts_with('/') && !location.starts_with("//")
}

/// `Status: 404 Not Found` → (404, "Not Found").
fn parse_status(value: &str) -> Option<(u16, String)> {
    let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    // A script answers with a final status; 1xx would leave the client
    // waiting for one.
    if !(200..=599).contains(&code) {
        return None;
    }
    let reason = reason.trim();
    let reason = if reason.is_empty() {
        default_reason(code)
    } else {
        reason
    };
    Some((code, reason.chars().filter(|c| !c.is_control()).collect()))
}

fn default_reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(raw: &str) -> (u16, Option<u64>, Vec<(String, String)>, usize) {
        match parse_script_head(raw.as_bytes()) {
            HeadParse::Complete(
                ScriptResponse::Document {
                    status,
                    content_length,
                    headers,
                    ..
                },
                used,
            ) => (status, content_length, headers, used),
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn documents() {
        let (status, len, headers, used) = document("Content-Type: text/plain\n\nhello");
        assert_eq!((status, len, used), (200, None, 26));
        assert_eq!(headers, vec![("Content-Type".into(), "text/plain".into())]);
        let (status, len, headers, _) =
            document("Status: 404 Gone Away\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: b\r\nConnection: close\r\n\r\n");
        assert_eq!((status, len), (404, Some(5)));
        assert_eq!(headers.len(), 2);
        assert_eq!(document("Status: 204\n\n").0, 204);
    }

    #[test]
    fn redirects() {
        assert_eq!(
            parse_script_head(b"Location: /other.html\n\n"),
            HeadParse::Complete(
                ScriptResponse::LocalRedirect {
                    path: "/other.html".into()
                },
                23
            )
        );
        let (status, _, headers, _) = document("Location: http://example.com/\n\n");
        assert_eq!(status, 302);
        assert_eq!(headers[0].1, "http://example.com/");
        assert_eq!(document("Status: 301 Moved\nLocation: /x\n\n").0, 301);
        let (status, _, headers, _) = document("Location: //example.com/x\n\n");
        assert_eq!(status, 302, "a network-path reference is not local");
        assert_eq!(headers[0].1, "//example.com/x");
    }

    #[test]
    fn invalid_blocks() {
        assert!(matches!(
            parse_script_head(b"hello world\n\n"),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_script_head(b"X-Only: 1\n\n"),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_script_head(b"Status: abc\n\n"),
            HeadParse::Invalid(_)
        ));
        assert_eq!(
            parse_script_head(b"Content-Type: text/plain\n"),
            HeadParse::Partial
        );
        let huge = format!("X: {}", "a".repeat(MAX_SCRIPT_HEAD + 1));
        assert!(matches!(
            parse_script_head(huge.as_bytes()),
            HeadParse::Invalid(_)
        ));
    }
}

//! A response head as the server writes it for HTTP/1.1 (status line,
//! fields, blank line) turned into an HTTP/2 header list: `:status`
//! first, names in lowercase, and none of the connection-specific fields
//! HTTP/2 forbids (RFC 9113 8.2.2). The head is the server's own (or a
//! script's, already checked by the CGI code), so reading it needs no
//! more care than finding its lines.

/// What the head says about the body that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    /// The `Content-Length` the head declares, if any.
    pub(crate) content_length: Option<u64>,
}

impl ResponseHead {
    /// An interim (1xx) response: the real one follows.
    pub(crate) fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// A status that never has a body (RFC 9110 6.4.1).
    pub(crate) fn has_no_body(&self) -> bool {
        self.status == 204 || self.status == 304 || self.is_interim()
    }
}

/// What reading a head found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// A whole head, ending at this index (past its blank line).
    Head(ResponseHead, usize),
    /// No blank line yet: more is to come (what was handed out so far is
    /// to be dropped).
    Incomplete,
    /// Not a response head.
    Malformed,
}

/// Reads the head at the start of `bytes`, in one pass, handing every
/// field HTTP/2 carries to `field`, `:status` first, names in lowercase.
pub(crate) fn read(bytes: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> Read {
    let mut pos = 0;
    let next_line = |pos: &mut usize| -> Option<&[u8]> {
        let rest = &bytes[*pos..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        *pos += nl + 1;
        Some(rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]))
    };
    let Some(status_line) = next_line(&mut pos) else {
        return Read::Incomplete;
    };
    let Some(code) = status_line.splitn(3, |&b| b == b' ').nth(1) else {
        return Read::Malformed;
    };
    let status = match std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(status) if code.len() == 3 => status,
        _ => return Read::Malformed,
    };
    field(b":status", code);
    let mut content_length = None;
    let mut name = [0u8; 64];
    loop {
        let Some(line) = next_line(&mut pos) else {
            return Read::Incomplete;
        };
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Read::Malformed;
        };
        let (raw_name, value) = (&line[..colon], trim(&line[colon + 1..]));
        let lower = lowercase(raw_name, &mut name);
        let lower: &[u8] = match &lower {
            Lowered::Stack(n) => &name[..*n],
            Lowered::Heap(v) => v,
        };
        match lower {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => continue,
            b"content-length" => {
                content_length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                if content_length.is_none() {
                    return Read::Malformed;
                }
            }
            _ => {}
        }
        field(lower, value);
    }
    Read::Head(
        ResponseHead {
            status,
            content_length,
        },
        pos,
    )
}

enum Lowered {
    Stack(usize),
    Heap(Vec<u8>),
}

/// `name` in lowercase: in `stack` when it fits, else on the heap.
fn lowercase(name: &[u8], stack: &mut [u8; 64]) -> Lowered {
    if name.len() <= stack.len() {
        for (to, from) in stack.iter_mut().zip(name) {
            *to = from.to_ascii_lowercase();
        }
        return Lowered::Stack(name.len());
    }
    Lowered::Heap(name.to_ascii_lowercase())
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(start, |i| i + 1);
    &value[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(head: &str) -> (Option<ResponseHead>, Vec<(String, String)>) {
        let mut list = Vec::new();
        let read = read(head.as_bytes(), |n, v| {
            list.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        match read {
            Read::Head(head, _) => (Some(head), list),
            _ => (None, list),
        }
    }

    #[test]
    fn a_head_becomes_a_status_and_lowercase_fields() {
        let (head, list) = fields(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\
             Content-Length: 12\r\nTransfer-Encoding: chunked\r\nKeep-Alive: x\r\n\r\n",
        );
        assert_eq!(
            head,
            Some(ResponseHead {
                status: 200,
                content_length: Some(12)
            })
        );
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [":status", "content-type", "content-length"]);
        assert_eq!(list[1].1, "text/html");
    }

    #[test]
    fn interim_and_bodiless_statuses_are_told_apart() {
        let (head, _) = fields("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(head.is_some_and(|h| h.is_interim() && h.has_no_body()));
        let (head, _) = fields("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
        assert!(head.is_some_and(|h| h.has_no_body() && !h.is_interim()));
        let ends = |b: &[u8]| match read(b, |_, _| {}) {
            Read::Head(_, end) => Some(end),
            _ => None,
        };
        assert_eq!(ends(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nA: b\r\n", |_, _| {}),
            Read::Incomplete
        );
    }

    #[test]
    fn what_is_not_a_head_is_refused() {
        assert_eq!(fields("garbage\r\n\r\n").0, None);
        assert_eq!(fields("HTTP/1.1 2000 OK\r\n\r\n").0, None);
        assert_eq!(fields("HTTP/1.1 200 OK\r\nno colon\r\n\r\n").0, None);
    }
}

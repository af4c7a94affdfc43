//! An HTTP/2 request's header list checked against RFC 9113 section 8
//! (pseudo-header fields, lowercase names, no connection-specific
//! fields, values without surrounding whitespace) and written as the
//! HTTP/1.1 head the rest of the server reads: a stream is served as a
//! connection carrying one request, so every check and every answer of
//! HTTP/1.1 (paths, Host, ranges, conditionals, scripts) applies to it
//! unchanged.

/// A request head ready for the HTTP/1.1 parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// `METHOD target HTTP/1.1`, `Host`, the fields, the blank line.
    pub(crate) text: Vec<u8>,
    /// The `content-length` the client declared.
    pub(crate) content_length: Option<u64>,
    /// The body comes with no declared length: it is handed on chunked.
    pub(crate) chunked: bool,
    /// A HEAD request: its answer has no body whatever its head says.
    pub(crate) head_request: bool,
}

/// Why a header list is malformed (a stream error, PROTOCOL_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Checks a decoded header list and writes its HTTP/1.1 head.
/// `end_stream` says the HEADERS frame ended the request (no body).
pub(crate) fn to_http1(
    fields: &[(&[u8], &[u8])],
    end_stream: bool,
) -> Result<RequestHead, Malformed> {
    let mut pseudo = Pseudo::default();
    let mut regular = false;
    let mut content_length = None;
    let mut host: Option<&[u8]> = None;
    let mut cookies: Vec<&[u8]> = Vec::new();
    for &(name, value) in fields {
        check_value(value)?;
        if let Some(pseudo_name) = name.strip_prefix(b":") {
            if regular {
                return Err(Malformed("a pseudo-header field after a regular one"));
            }
            pseudo.set(pseudo_name, value)?;
            continue;
        }
        regular = true;
        check_name(name)?;
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => return Err(Malformed("a connection-specific header field")),
            b"te" if value != b"trailers" => return Err(Malformed("te other than trailers")),
            b"host" => host = Some(value),
            b"cookie" => cookies.push(value),
            b"content-length" => {
                let n = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(Malformed("a bad content-length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Malformed("two content-lengths"));
                }
                content_length = Some(n);
            }
            _ => {}
        }
    }
    let (Some(method), Some(path)) = (pseudo.method, pseudo.path) else {
        return Err(Malformed("no :method or :path"));
    };
    if pseudo.scheme.is_none() || path.is_empty() {
        return Err(Malformed("no :scheme, or an empty :path"));
    }
    // Origin form, or `*` for OPTIONS (RFC 9113 8.3.1): an absolute
    // :path would name a host past the :authority check.
    if !(path.starts_with(b"/") || path == b"*" && method == b"OPTIONS") {
        return Err(Malformed("a :path not in origin form"));
    }
    if let (Some(h), Some(a)) = (host, pseudo.authority) {
        if h != a {
            return Err(Malformed("host differs from :authority"));
        }
    }
    if end_stream && content_length.is_some_and(|n| n > 0) {
        return Err(Malformed("a content-length with no body"));
    }
    let chunked = !end_stream && content_length.is_none();
    let mut text = Vec::with_capacity(
        64 + fields
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>(),
    );
    for piece in [method, b" ", path, b" HTTP/1.1\r\n"] {
        text.extend_from_slice(piece);
    }
    if let Some(authority) = pseudo.authority.or(host) {
        push_field(&mut text, b"host", authority);
    }
    for &(name, value) in fields {
        if name.starts_with(b":") || matches!(name, b"host" | b"cookie") {
            continue;
        }
        push_field(&mut text, name, value);
    }
    if !cookies.is_empty() {
        // RFC 9113 8.2.3: the crumbs join into one field for HTTP/1.1.
        text.extend_from_slice(b"cookie: ");
        for (i, crumb) in cookies.iter().enumerate() {
            if i > 0 {
                text.extend_from_slice(b"; ");
            }
            text.extend_from_slice(crumb);
        }
        text.extend_from_slice(b"\r\n");
    }
    if chunked {
        text.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    text.extend_from_slice(b"\r\n");
    Ok(RequestHead {
        text,
        content_length,
        chunked,
        head_request: method == b"HEAD",
    })
}

/// The four request pseudo-header fields.
#[derive(Default)]
struct Pseudo<'a> {
    method: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
}

impl<'a> Pseudo<'a> {
    fn set(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), Malformed> {
        let slot = match name {
            b"method" => &mut self.method,
            b"scheme" => &mut self.scheme,
            b"path" => &mut self.path,
            b"authority" => &mut self.authority,
            _ => return Err(Malformed("an unknown pseudo-header field")),
        };
        if slot.replace(value).is_some() {
            return Err(Malformed("a pseudo-header field twice"));
        }
        Ok(())
    }
}

fn push_field(text: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    text.extend_from_slice(name);
    text.extend_from_slice(b": ");
    text.extend_from_slice(value);
    text.extend_from_slice(b"\r\n");
}

/// A field name: a token, in lowercase (RFC 9113 8.2.1).
fn check_name(name: &[u8]) -> Result<(), Malformed> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.iter().all(|&b| token(b) && !b.is_ascii_uppercase()) {
        return Err(Malformed("a field name that is not a lowercase token"));
    }
    Ok(())
}

/// A field value: no NUL, CR or LF, and no whitespace at either end.
fn check_value(value: &[u8]) -> Result<(), Malformed> {
    let bad_edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
        || bad_edge(value.first())
        || bad_edge(value.last())
    {
        return Err(Malformed("a field value with a forbidden character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_http1(fields: &[(Vec<u8>, Vec<u8>)], end: bool) -> Result<RequestHead, Malformed> {
        let slices: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        super::to_http1(&slices, end)
    }

    fn list(fields: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn get(extra: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields = list(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/a?b"),
            (":authority", "example.org"),
        ]);
        fields.extend(list(extra));
        fields
    }

    #[test]
    fn a_get_becomes_an_http1_head_with_its_host() {
        let head = to_http1(&get(&[("accept", "*/*")]), true).expect("valid");
        assert_eq!(
            String::from_utf8_lossy(&head.text),
            "GET /a?b HTTP/1.1\r\nhost: example.org\r\naccept: */*\r\n\r\n"
        );
        assert!(!head.chunked && !head.head_request);
    }

    #[test]
    fn a_body_without_a_length_goes_on_chunked() {
        let mut fields = get(&[]);
        fields[0].1 = b"POST".to_vec();
        let head = to_http1(&fields, false).expect("valid");
        assert!(head.chunked);
        assert!(head.text.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
        fields.extend(list(&[("content-length", "5")]));
        let head = to_http1(&fields, false).expect("valid");
        assert_eq!((head.chunked, head.content_length), (false, Some(5)));
    }

    #[test]
    fn cookies_join_into_one_field() {
        let head = to_http1(&get(&[("cookie", "a=1"), ("cookie", "b=2")]), true).expect("ok");
        let text = String::from_utf8_lossy(&head.text);
        assert!(text.contains("cookie: a=1; b=2\r\n"), "{text}");
    }

    #[test]
    fn malformed_lists_are_refused() {
        let cases: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
            get(&[("connection", "close")]),
            get(&[("te", "gzip")]),
            get(&[("Accept", "x")]),
            get(&[("accept", " x")]),
            get(&[("accept", "x\t")]),
            get(&[("host", "other.example")]),
            get(&[(":status", "200")]),
            get(&[("content-length", "1x")]),
            list(&[(":method", "GET"), (":path", "/")]),
            list(&[(":method", "GET"), (":scheme", "http"), (":path", "")]),
            list(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "http://other/"),
            ]),
            list(&[(":method", "GET"), (":scheme", "http"), (":path", "*")]),
            {
                let mut l = list(&[("accept", "x")]);
                l.extend(get(&[]));
                l
            },
            {
                let mut l = get(&[]);
                l.extend(list(&[(":path", "/again")]));
                l
            },
        ];
        for fields in cases {
            assert!(to_http1(&fields, true).is_err(), "{fields:?}");
        }
        assert!(to_http1(&get(&[("content-length", "3")]), true).is_err());
        assert!(to_http1(&get(&[("te", "trailers")]), true).is_ok());
    }
}

//! Validating an authority: a `Host` header's value or the authority of
//! an absolute-form request target (RFC 9112 section 3.2, RFC 3986
//! section 3.2): `host [ ":" port ]`, where host is a bracketed IP
//! literal or a registered name (or IPv4 address). Userinfo (`user@`), a
//! path, several comma-separated values, whitespace and a port that is
//! not a number up to 65535 are refused; the request then gets 400.

/// A valid authority, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The host as sent (an IP literal without its brackets): what a CGI
    /// script gets as SERVER_NAME.
    pub host: String,
    pub port: Option<u16>,
}

/// An authority that is not `host [ ":" port ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAuthority;

/// Parses `host [ ":" port ]`. The host may be empty (an HTTP/1.0 client,
/// or a request whose target has no authority, sends `Host:` empty);
/// callers that need a host check for that.
pub fn parse_authority(text: &[u8]) -> Result<Authority, BadAuthority> {
    let (host, port) = match text.first() {
        Some(b'[') => {
            let close = text.iter().position(|&b| b == b']').ok_or(BadAuthority)?;
            let literal = &text[1..close];
            let ip_literal = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
            if literal.is_empty() || !literal.iter().all(ip_literal) {
                return Err(BadAuthority);
            }
            match &text[close + 1..] {
                [] => (literal, None),
                [b':', port @ ..] => (literal, Some(port)),
                _ => return Err(BadAuthority),
            }
        }
        _ => match text.iter().position(|&b| b == b':') {
            Some(colon) => (&text[..colon], Some(&text[colon + 1..])),
            None => (text, None),
        },
    };
    let bracketed = text.first() == Some(&b'[');
    if !bracketed && !host.iter().all(|&b| is_reg_name_char(b)) {
        return Err(BadAuthority);
    }
    let port = match port {
        None => None,
        // `host:` is allowed by the grammar (port = *DIGIT): no port.
        Some([]) => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok(Authority {
        host: String::from_utf8_lossy(host).into_owned(),
        port,
    })
}

/// A registered name's characters: unreserved, `%` of pct-encoded, and
/// the sub-delims but `,` (a list of hosts is not a host).
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=".contains(&b)
}

fn parse_port(digits: &[u8]) -> Result<u16, BadAuthority> {
    if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BadAuthority);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(BadAuthority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Result<(String, Option<u16>), BadAuthority> {
        parse_authority(text.as_bytes()).map(|a| (a.host, a.port))
    }

    #[test]
    fn valid_authorities() {
        assert_eq!(host("example.org"), Ok(("example.org".into(), None)));
        assert_eq!(
            host("example.org:8080"),
            Ok(("example.org".into(), Some(8080)))
        );
        assert_eq!(host("127.0.0.1:80"), Ok(("127.0.0.1".into(), Some(80))));
        assert_eq!(host("[::1]:8000"), Ok(("::1".into(), Some(8000))));
        assert_eq!(host("[::1]"), Ok(("::1".into(), None)));
        assert_eq!(host("h:"), Ok(("h".into(), None)));
        assert_eq!(host(""), Ok(("".into(), None)));
        assert_eq!(
            host("xn--bcher-kva.example"),
            Ok(("xn--bcher-kva.example".into(), None))
        );
    }

    #[test]
    fn invalid_authorities() {
        for bad in [
            "user@host",
            "user:pw@host",
            "host/path",
            "a.example, b.example",
            "a.example,b.example",
            "host:port",
            "host:65536",
            "host:123456",
            "host:-1",
            "host:80:81",
            "a host",
            "[::1",
            "[::1]x",
            "[]",
            "[zz::1]",
            "host\t",
            "host?q",
            "host#f",
            "[::1]:http",
        ] {
            assert_eq!(host(bad), Err(BadAuthority), "{bad:?}");
        }
    }
}

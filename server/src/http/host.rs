//! Validating an authority: a `Host` header's value or the authority of
//! an absolute-form request target (RFC 9112 section 3.2, RFC 3986
//! section 3.2): `host [ ":" port ]`, where host is a bracketed IP
//! literal or a registered name (or IPv4 address). Userinfo (`user@`), a
//! path, several comma-separated values, whitespace and a port that is
//! not a number up to 65535 are refused; the request then gets 400.

/// A valid authority, split; the host borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authority<'a> {
    /// The host as sent (an IP literal without its brackets), ASCII: what
    /// a CGI script gets as SERVER_NAME.
    pub(crate) host: &'a [u8],
    pub(crate) port: Option<u16>,
}

/// An authority that is not `host [ ":" port ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadAuthority;

/// Parses `host [ ":" port ]`. The host may be empty (an HTTP/1.0 client,
/// or a request whose target has no authority, sends `Host:` empty);
/// callers that need a host check for that.
pub(crate) fn parse_authority(text: &[u8]) -> Result<Authority<'_>, BadAuthority> {
    let (host, port) = match text.first() {
        Some(b'[') => split_ip_literal(text)?,
        _ => split_reg_name(text)?,
    };
    let port = match port {
        None => None,
        // `host:` is allowed by the grammar (port = *DIGIT): no port.
        Some([]) => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok(Authority { host, port })
}

/// `[literal]` and what follows it: nothing, or `:` and the port.
fn split_ip_literal(text: &[u8]) -> Result<(&[u8], Option<&[u8]>), BadAuthority> {
    let close = text.iter().position(|&b| b == b']').ok_or(BadAuthority)?;
    let literal = &text[1..close];
    let ip_literal = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
    if literal.is_empty() || !literal.iter().all(ip_literal) {
        return Err(BadAuthority);
    }
    match &text[close + 1..] {
        [] => Ok((literal, None)),
        [b':', port @ ..] => Ok((literal, Some(port))),
        _ => Err(BadAuthority),
    }
}

/// A registered name (or IPv4 address) up to the first `:`, checked, and
/// what follows the `:`, if any.
fn split_reg_name(text: &[u8]) -> Result<(&[u8], Option<&[u8]>), BadAuthority> {
    for (at, &b) in text.iter().enumerate() {
        if b == b':' {
            return Ok((&text[..at], Some(&text[at + 1..])));
        }
        if !REG_NAME[usize::from(b)] {
            return Err(BadAuthority);
        }
    }
    Ok((text, None))
}

/// [`is_reg_name_char`] as a table, one look-up a byte.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_reg_name_char(b as u8);
        b += 1;
    }
    table
};

/// A registered name's characters: unreserved, `%` of pct-encoded, and
/// the sub-delims but `,` (a list of hosts is not a host).
const fn is_reg_name_char(b: u8) -> bool {
    if b.is_ascii_alphanumeric() {
        return true;
    }
    let others = b"-._~%!$&'()*+;=";
    let mut i = 0;
    while i < others.len() {
        if others[i] == b {
            return true;
        }
        i += 1;
    }
    false
}

/// Up to five digits, at most 65535.
fn parse_port(digits: &[u8]) -> Result<u16, BadAuthority> {
    if digits.len() > 5 {
        return Err(BadAuthority);
    }
    let mut port: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(BadAuthority);
        }
        port = port * 10 + u32::from(d - b'0');
    }
    u16::try_from(port).map_err(|_| BadAuthority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Result<(String, Option<u16>), BadAuthority> {
        parse_authority(text.as_bytes()).map(|a| (String::from_utf8_lossy(a.host).into(), a.port))
    }

    #[test]
    fn the_table_is_the_character_class() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=".contains(&b);
            assert_eq!(REG_NAME[usize::from(b)], expected, "{b:#x}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(host("h:0"), Ok(("h".into(), Some(0))));
        assert_eq!(host("h:00080"), Ok(("h".into(), Some(80))));
        assert_eq!(host("h:65535"), Ok(("h".into(), Some(65535))));
        assert_eq!(host("h:99999"), Err(BadAuthority));
        assert_eq!(host("h:8a"), Err(BadAuthority));
        assert_eq!(host("h:+80"), Err(BadAuthority));
        assert_eq!(host("[::1]:"), Ok(("::1".into(), None)));
        assert_eq!(parse_authority(b"h\xc3\xa9"), Err(BadAuthority));
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

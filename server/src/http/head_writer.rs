//! Writing the parts of a response head: the status line with `Date`,
//! `Server` and the lines a connection adds to every head ([`Stamp`],
//! from [`AddedLines`]), `Content-Length`, and the numbers in them,
//! without allocating.

use super::status::Status;

/// The `Server` header's value.
pub(crate) const SERVER_NAME: &str = concat!("amped/", env!("CARGO_PKG_VERSION"));

/// What every response head carries after its status line: this
/// second's `Date` (then `Server`), and the header lines the connection
/// adds to each of its responses (`Strict-Transport-Security` over
/// HTTPS), each ending in CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp<'a> {
    pub(crate) date: &'a str,
    pub(crate) lines: &'a [u8],
}

impl<'a> Stamp<'a> {
    /// A stamp that adds no lines.
    pub(crate) fn plain(date: &'a str) -> Stamp<'a> {
        Stamp { date, lines: b"" }
    }

    /// True when the stamp adds lines. The server has one set of added
    /// lines (its HTTPS ones), so this and the date tell heads apart.
    pub(crate) fn adds_lines(&self) -> bool {
        !self.lines.is_empty()
    }
}

/// The header lines added to every response, by transport: none over
/// plain HTTP, `Strict-Transport-Security` over HTTPS when configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddedLines {
    tls: Box<[u8]>,
}

impl AddedLines {
    /// With `hsts` (a checked `Strict-Transport-Security` value) on every
    /// HTTPS response.
    pub(crate) fn new(hsts: Option<&str>) -> AddedLines {
        let tls = match hsts {
            Some(value) => format!("Strict-Transport-Security: {value}\r\n").into_bytes(),
            None => Vec::new(),
        };
        AddedLines { tls: tls.into() }
    }

    /// The stamp for a head sent at `date` on a connection that is TLS
    /// or not.
    pub(crate) fn stamp<'a>(&'a self, date: &'a str, tls: bool) -> Stamp<'a> {
        match tls {
            true => Stamp {
                date,
                lines: &self.tls,
            },
            false => Stamp::plain(date),
        }
    }

    /// The most bytes these lines add to a head (what a kept head may
    /// take beyond one without them).
    pub(crate) fn longest(&self) -> usize {
        self.tls.len()
    }
}

/// Starts a head: status line, `Date`, `Server` and the stamp's lines.
pub(crate) fn begin(out: &mut Vec<u8>, status: Status, stamp: Stamp<'_>) {
    begin_with_reason(out, status.code, status.reason, stamp);
}

/// Starts a head with any status code and reason phrase.
pub(crate) fn begin_with_reason(out: &mut Vec<u8>, code: u16, reason: &str, stamp: Stamp<'_>) {
    let date = stamp.date;
    out.extend_from_slice(b"HTTP/1.1 ");
    match code {
        100..=999 => out.extend_from_slice(&three_digits(code)),
        _ => push_decimal(out, u64::from(code)),
    }
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    // An IMF-fixdate is 29 bytes: a copy of known length needs no call.
    match <&[u8; 29]>::try_from(date.as_bytes()) {
        Ok(fixed) => out.extend_from_slice(fixed),
        Err(_) => out.extend_from_slice(date.as_bytes()),
    }
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER_NAME.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(stamp.lines);
}

/// Adds `Content-Length`.
pub(crate) fn content_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, length);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in hexadecimal (a chunk size), without allocating.
pub(crate) fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The three digits of a status code from 100 to 999.
fn three_digits(code: u16) -> [u8; 3] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [digit(code / 100), digit(code / 10), digit(code)]
}

/// Appends `n` in decimal, without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        for (code, reason) in [(200, "OK"), (100, "Continue"), (999, "X"), (42, "Odd")] {
            let mut out = Vec::new();
            let date = "Sun, 06 Nov 1994 08:49:37 GMT";
            begin_with_reason(&mut out, code, reason, Stamp::plain(date));
            let expected = format!(
                "HTTP/1.1 {code} {reason}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER_NAME}\r\n"
            );
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
        let mut out = Vec::new();
        begin_with_reason(&mut out, 200, "OK", Stamp::plain("D"));
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: D\r\n"));
    }

    #[test]
    fn added_lines_follow_server_over_tls_only() {
        let added = AddedLines::new(Some("max-age=60"));
        let head = |tls| {
            let mut out = Vec::new();
            begin(&mut out, Status::OK, added.stamp("D", tls));
            String::from_utf8(out).expect("ASCII")
        };
        let server = format!("Server: {SERVER_NAME}\r\n");
        assert_eq!(
            head(true),
            format!(
                "HTTP/1.1 200 OK\r\nDate: D\r\n{server}Strict-Transport-Security: max-age=60\r\n"
            )
        );
        assert_eq!(
            head(false),
            format!("HTTP/1.1 200 OK\r\nDate: D\r\n{server}")
        );
        let none = AddedLines::new(None);
        assert_eq!(none.stamp("D", true), Stamp::plain("D"));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 1234, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn hexadecimals() {
        for n in [0u64, 9, 10, 255, 4096, u64::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
        }
    }
}

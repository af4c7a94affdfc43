//! Writing the parts of a response head: the status line with `Date`
//! and `Server`, `Content-Length`, and the numbers in them, without
//! allocating.

use super::status::Status;

/// The `Server` header's value.
pub(crate) const SERVER_NAME: &str = concat!("amped/", env!("CARGO_PKG_VERSION"));

/// Starts a head: status line, `Date` and `Server`.
pub(crate) fn begin(out: &mut Vec<u8>, status: Status, date: &str) {
    begin_with_reason(out, status.code, status.reason, date);
}

/// Starts a head with any status code and reason phrase.
pub(crate) fn begin_with_reason(out: &mut Vec<u8>, code: u16, reason: &str, date: &str) {
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
            begin_with_reason(&mut out, code, reason, "Sun, 06 Nov 1994 08:49:37 GMT");
            let expected = format!(
                "HTTP/1.1 {code} {reason}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER_NAME}\r\n"
            );
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
        let mut out = Vec::new();
        begin_with_reason(&mut out, 200, "OK", "D");
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: D\r\n"));
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

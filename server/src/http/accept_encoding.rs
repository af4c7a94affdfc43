//! `Accept-Encoding` (RFC 9110 12.5.3), as far as `--gzip-static` needs
//! it: whether the client takes a gzip-coded body.
//!
//! A `gzip` (or `x-gzip`) member decides by its weight; without one, a
//! `*` member does. A weight of zero refuses; a member whose weight does
//! not parse counts for nothing.

/// What an `Accept-Encoding` value says about gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Gzip {
    /// Not named, not covered by `*`, or refused with `q=0`.
    #[default]
    Refused,
    Accepted,
}

/// Reads one `Accept-Encoding` field value.
pub(crate) fn gzip_accepted(value: &[u8]) -> Gzip {
    if value.is_empty() {
        return Gzip::Refused;
    }
    let mut named = None;
    let mut any = None;
    for member in value.split(|&b| b == b',') {
        let mut parts = member.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        let Some(weight) = weight(parts) else {
            continue;
        };
        if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            named = Some(named.map_or(weight, |w: u16| w.max(weight)));
        } else if coding == b"*" {
            any = Some(weight);
        }
    }
    match named.or(any) {
        Some(w) if w > 0 => Gzip::Accepted,
        _ => Gzip::Refused,
    }
}

/// The member's weight in thousandths (1000 without a `q`), or `None`
/// when a parameter is malformed.
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let param = param.trim_ascii();
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(at) => (&param[..at], &param[at + 1..]),
            None => return None,
        };
        if name.trim_ascii().eq_ignore_ascii_case(b"q") {
            weight = qvalue(value.trim_ascii())?;
        }
    }
    Some(weight)
}

/// A `qvalue`: `0` or `1` with up to three decimals, at most 1.
fn qvalue(value: &[u8]) -> Option<u16> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(at) => (&value[..at], &value[at + 1..]),
        None => (value, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for place in 0..3 {
        let digit = fraction.get(place).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{gzip_accepted, Gzip};

    fn accepts(value: &str) -> bool {
        gzip_accepted(value.as_bytes()) == Gzip::Accepted
    }

    #[test]
    fn gzip_named_is_accepted() {
        assert!(accepts("gzip"));
        assert!(accepts("GZip"));
        assert!(accepts("x-gzip"));
        assert!(accepts("deflate, gzip, br"));
        assert!(accepts(" br ;q=0.5 , gzip ; q=0.8"));
        assert!(accepts("gzip;q=1"));
        assert!(accepts("gzip;q=1.000"));
        assert!(accepts("gzip;Q=0.001"));
    }

    #[test]
    fn star_covers_gzip() {
        assert!(accepts("*"));
        assert!(accepts("br, *;q=0.1"));
        assert!(!accepts("*;q=0"));
    }

    #[test]
    fn zero_weight_refuses() {
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0.000"));
        assert!(!accepts("*, gzip;q=0"));
        assert!(!accepts("gzip;q=0, *"));
    }

    #[test]
    fn other_codings_and_empty_refuse() {
        assert!(!accepts(""));
        assert!(!accepts("identity"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts("gzipped"));
    }

    #[test]
    fn malformed_weights_count_for_nothing() {
        assert!(!accepts("gzip;q=2"));
        assert!(!accepts("gzip;q=1.5"));
        assert!(!accepts("gzip;q=0.0001"));
        assert!(!accepts("gzip;q=abc"));
        assert!(!accepts("gzip;q="));
        assert!(!accepts("gzip;q"));
        assert!(!accepts("gzip;q=-1"));
        assert!(accepts("gzip;q=x, *"));
    }
}

//! The two facts amped reads from an X.509 certificate itself: the DNS
//! names it is for (its subjectAltName, else its subject's common name)
//! and when it expires. A small DER reader for just that path through
//! the structure; rustls checks the rest at each handshake's signature.

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertFacts {
    /// DNS names, lower case; `*.example.org` for a wildcard.
    pub(crate) names: Vec<String>,
    /// Seconds since the Unix epoch after which it is no longer valid.
    pub(crate) not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_3: u8 = 0xa3;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const DNS_NAME: u8 = 0x82;
/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// 2.5.4.3, commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// A DER reader over one level of a structure.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: its tag and contents.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, after) = self.rest.split_first()?;
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || after.len() < count {
                return None;
            }
            let (bytes, tail) = after.split_at(count);
            after = tail;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        if after.len() < len {
            return None;
        }
        let (contents, tail) = after.split_at(len);
        self.rest = tail;
        Some((tag, contents))
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, contents) if t == tag => Some(contents),
            _ => None,
        }
    }
}

/// Reads the names and the expiry of a DER certificate.
pub(crate) fn facts(der: &[u8]) -> Option<CertFacts> {
    let certificate = Der::new(der).expect(SEQUENCE)?;
    let mut tbs = Der::new(Der::new(certificate).expect(SEQUENCE)?);
    if tbs.peek_tag() == Some(CONTEXT_0) {
        tbs.next()?; // version
    }
    tbs.next()?; // serial number
    tbs.expect(SEQUENCE)?; // signature algorithm
    tbs.expect(SEQUENCE)?; // issuer
    let mut validity = Der::new(tbs.expect(SEQUENCE)?);
    validity.next()?; // not before
    let (tag, time) = validity.next()?;
    let not_after = parse_time(tag, time)?;
    let subject = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // subject public key info
    let mut names = Vec::new();
    while let Some((tag, contents)) = tbs.next() {
        if tag == CONTEXT_3 {
            names = alt_names(Der::new(contents).expect(SEQUENCE)?)?;
        }
    }
    if names.is_empty() {
        names.extend(common_name(subject));
    }
    Some(CertFacts { names, not_after })
}

/// The DNS names of the subjectAltName extension, if there is one.
fn alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let mut list = Der::new(extensions);
    let mut names = Vec::new();
    while !list.is_empty() {
        let mut extension = Der::new(list.expect(SEQUENCE)?);
        let oid = extension.expect(OID)?;
        if extension.peek_tag() == Some(BOOLEAN) {
            extension.next()?;
        }
        let value = extension.expect(OCTET_STRING)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut general_names = Der::new(Der::new(value).expect(SEQUENCE)?);
        while let Some((tag, name)) = general_names.next() {
            if tag == DNS_NAME {
                names.push(String::from_utf8_lossy(name).to_ascii_lowercase());
            }
        }
    }
    Some(names)
}

/// The subject's common name, for a certificate without alternative
/// names.
fn common_name(subject: &[u8]) -> Option<String> {
    let mut rdns = Der::new(subject);
    while let Some(set) = rdns.expect(SET) {
        let mut attribute = Der::new(Der::new(set).expect(SEQUENCE)?);
        if attribute.expect(OID)? == COMMON_NAME {
            let (_, value) = attribute.next()?;
            return Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        }
    }
    None
}

/// An X.509 time (UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`) in seconds since the epoch.
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let (year, at) = match tag {
        UTC_TIME => {
            let yy = digits(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        GENERALIZED_TIME => (digits(0..4)?, 4),
        _ => return None,
    };
    let month = digits(at..at + 2)?;
    let day = digits(at + 2..at + 4)?;
    let hour = digits(at + 4..at + 6)?;
    let minute = digits(at + 6..at + 8)?;
    let second = digits(at + 8..at + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian
/// calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_both_forms() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(
            parse_time(UTC_TIME, b"261207164500Z"),
            Some(1_796_661_900),
            "2026-12-07 16:45:00"
        );
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20261207164500Z"),
            Some(1_796_661_900)
        );
        assert_eq!(parse_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(UTC_TIME, b"26120716450"), None, "cut short");
        assert_eq!(parse_time(UTC_TIME, b"261307164500Z"), None, "month 13");
        assert_eq!(parse_time(OCTET_STRING, b"700101000000Z"), None);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(facts(b""), None);
        assert_eq!(facts(&[0x30, 0x82, 0xff]), None);
        assert_eq!(facts(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}

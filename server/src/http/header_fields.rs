//! The header fields of a request head that amped acts on, each told
//! apart by its name in any case, and checked as it is read: `Host`,
//! `Content-Length`, `Transfer-Encoding`, `Connection`, `Expect`, the
//! conditional fields, `Range`, `Accept-Encoding`, and the ones the
//! access log keeps.

use super::conditional::{Condition, Conditions};
use super::host::{parse_authority, Authority};
use super::request_body::Framing;
use super::status::Status;
use crate::http::keep_alive;

/// A head's fields, as the fast path or httparse read them.
#[derive(Clone, Copy)]
pub(super) enum Fields<'h, 'a> {
    Pairs(&'h [(&'a [u8], &'a [u8])]),
    Parsed(&'h [httparse::Header<'a>]),
}

impl<'h, 'a> Fields<'h, 'a> {
    /// Each field's name and value, in order.
    pub(super) fn iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'h {
        let (pairs, parsed) = match self {
            Fields::Pairs(pairs) => (pairs, &[][..]),
            Fields::Parsed(parsed) => (&[][..], parsed),
        };
        let parsed = parsed.iter().map(|h| (h.name.as_bytes(), h.value));
        pairs.iter().copied().chain(parsed)
    }
}

/// The header fields amped acts on.
#[derive(Debug, Default)]
pub(super) struct HeaderFields<'a> {
    /// The `Host` header, validated.
    pub(super) host: Option<Authority<'a>>,
    pub(super) keep_alive: bool,
    pub(super) framing: Framing,
    pub(super) range: Option<String>,
    /// Every `Accept-Encoding` value, joined with commas.
    pub(super) accept_encoding: Vec<u8>,
    pub(super) conditions: Conditions,
    pub(super) expect_continue: bool,
    pub(super) referer: Option<String>,
    pub(super) user_agent: Option<String>,
}

impl<'a> HeaderFields<'a> {
    /// Reads the fields amped acts on; `Referer` and `User-Agent` only
    /// when `want_log` (only the access log reads them).
    pub(super) fn collect(
        headers: &Fields<'_, 'a>,
        http10: bool,
        want_log: bool,
    ) -> Result<HeaderFields<'a>, Status> {
        let mut f = HeaderFields::default();
        let (mut close, mut keep) = (false, false);
        let mut length: Option<u64> = None;
        let mut codings = TransferCodings::default();
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        for (name, value) in headers.iter() {
            match Field::of(name) {
                Field::Host => {
                    // One Host, valid, and not empty on HTTP/1.1 (RFC 9112 3.2).
                    let authority = parse_authority(value).map_err(|_| Status::BAD_REQUEST)?;
                    if f.host.is_some() || authority.host.is_empty() && !http10 {
                        return Err(Status::BAD_REQUEST);
                    }
                    f.host = Some(authority);
                }
                // One option alone is the common case: no list to split.
                Field::Connection if is_field_name(value, b"keep-alive") => keep = true,
                Field::Connection => {
                    for token in value.split(|&b| b == b',') {
                        let token = token.trim_ascii();
                        close |= is_field_name(token, b"close");
                        keep |= is_field_name(token, b"keep-alive");
                    }
                }
                Field::ContentLength => {
                    let n = parse_length(value).ok_or(Status::BAD_REQUEST)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Status::BAD_REQUEST);
                    }
                    length = Some(n);
                }
                Field::TransferEncoding => codings.add(value),
                Field::Range => f.range = Some(text(value)),
                Field::AcceptEncoding => {
                    f.accept_encoding.push(b',');
                    f.accept_encoding.extend_from_slice(value);
                }
                Field::Expect => {
                    f.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
                }
                Field::Referer if want_log => f.referer = Some(text(value)),
                Field::UserAgent if want_log => f.user_agent = Some(text(value)),
                Field::Condition(which) => f.conditions.set(which, value),
                Field::Referer | Field::UserAgent | Field::Other => {}
            }
        }
        f.framing = match (codings.seen, length) {
            // RFC 9112 6.1: both at once is request smuggling's favourite.
            (true, Some(_)) => return Err(Status::BAD_REQUEST),
            (true, None) if http10 => return Err(Status::BAD_REQUEST),
            (true, None) if codings.only_chunked() => Framing::Chunked,
            (true, None) => return Err(Status::NOT_IMPLEMENTED),
            (false, Some(0)) | (false, None) => Framing::None,
            (false, Some(n)) => Framing::Length(n),
        };
        f.keep_alive = keep_alive::asked(http10, keep, close);
        Ok(f)
    }
}

/// The header fields amped reads, told apart by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Host,
    Connection,
    ContentLength,
    TransferEncoding,
    Range,
    AcceptEncoding,
    Expect,
    Referer,
    UserAgent,
    Condition(Condition),
    Other,
}

impl Field {
    /// Which field `name` is (any case). Names are told apart by their
    /// length first, so most take one comparison or none.
    pub(super) fn of(name: &[u8]) -> Field {
        let candidates: &[(&str, Field)] = match name.len() {
            4 => &[("host", Field::Host)],
            5 => &[("range", Field::Range)],
            6 => &[("expect", Field::Expect)],
            7 => &[("referer", Field::Referer)],
            8 => &[
                ("if-match", Field::Condition(Condition::Match)),
                ("if-range", Field::Condition(Condition::Range)),
            ],
            10 => &[
                ("connection", Field::Connection),
                ("user-agent", Field::UserAgent),
            ],
            13 => &[("if-none-match", Field::Condition(Condition::NoneMatch))],
            14 => &[("content-length", Field::ContentLength)],
            15 => &[("accept-encoding", Field::AcceptEncoding)],
            17 => &[
                ("transfer-encoding", Field::TransferEncoding),
                (
                    "if-modified-since",
                    Field::Condition(Condition::ModifiedSince),
                ),
            ],
            19 => &[(
                "if-unmodified-since",
                Field::Condition(Condition::UnmodifiedSince),
            )],
            _ => &[],
        };
        candidates
            .iter()
            .find(|(known, _)| is_field_name(name, known.as_bytes()))
            .map_or(Field::Other, |&(_, field)| field)
    }
}

/// True when `name` is `known` in any case, for a `known` made of
/// lowercase letters, digits and `-` (as the names [`Field::of`] knows
/// are, and the `Connection` options amped reads): where `known` has a letter, `name`'s byte may differ in its case
/// bit (0x20) only; anywhere else it must be the same byte. Eight bytes
/// are compared at a time, then the rest one by one.
pub(super) fn is_field_name(name: &[u8], known: &[u8]) -> bool {
    if name.len() != known.len() {
        return false;
    }
    let mut words = name.chunks_exact(8).zip(known.chunks_exact(8));
    let words_match = words.all(|(n, k)| {
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        let (n, k) = (word(n), word(k));
        // 0x20 in each byte where `known` has a letter (0x61..=0x7a):
        // only those bytes reach 0x80 with 0x1f added, without a carry.
        let case = ((k + 0x1f1f_1f1f_1f1f_1f1f) & 0x8080_8080_8080_8080) >> 2;
        n | case == k
    });
    let tail = name.len() / 8 * 8;
    words_match
        && name[tail..].iter().zip(&known[tail..]).all(|(&n, &k)| {
            let case = if k.is_ascii_lowercase() { 0x20 } else { 0 };
            n | case == k
        })
}

/// The transfer codings of a request, over all its `Transfer-Encoding`
/// lines. amped decodes one: a single `chunked`. Any other coding, or
/// `chunked` twice, is one it does not implement (RFC 9112 6.1: 501).
#[derive(Debug, Default)]
pub(super) struct TransferCodings {
    pub(super) seen: bool,
    pub(super) chunked: usize,
    pub(super) others: usize,
}

impl TransferCodings {
    pub(super) fn add(&mut self, value: &[u8]) {
        self.seen = true;
        // Empty list elements count for nothing (RFC 9110 5.6.1).
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked += 1;
            } else if !coding.is_empty() || value.trim_ascii().is_empty() {
                self.others += 1;
            }
        }
    }

    /// Exactly one coding, and it is `chunked`.
    pub(super) fn only_chunked(&self) -> bool {
        self.chunked == 1 && self.others == 0
    }
}

pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_compare_as_eq_ignore_ascii_case_does() {
        let known = [
            "host",
            "if-match",
            "content-length",
            "if-unmodified-since",
            "x-9a",
        ];
        let mut names: Vec<Vec<u8>> = Vec::new();
        for k in known {
            names.push(k.to_ascii_uppercase().into_bytes());
            names.push(k.as_bytes().to_vec());
            // Every byte changed, one at a time, to each value.
            for at in 0..k.len() {
                for b in 0..=255u8 {
                    let mut n = k.as_bytes().to_vec();
                    n[at] = b;
                    names.push(n);
                }
            }
        }
        for k in known {
            for n in &names {
                assert_eq!(
                    is_field_name(n, k.as_bytes()),
                    n.eq_ignore_ascii_case(k.as_bytes()),
                    "{:?} against {k:?}",
                    String::from_utf8_lossy(n)
                );
            }
        }
    }
}

//! Conditional and range requests: `If-None-Match`, `If-Modified-Since`
//! and a single `Range: bytes=...`.

use std::time::{Duration, UNIX_EPOCH};

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No range, a range amped does not do (several ranges, another
    /// unit), or a malformed one: send the whole file.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Evaluates a `Range` header against a file of `size` bytes.
pub fn evaluate_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeOutcome::Full,
        (true, false) => match number(last) {
            None => RangeOutcome::Full,
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if size == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        (false, open_end) => {
            let Some(start) = number(first) else {
                return RangeOutcome::Full;
            };
            let end = if open_end {
                u64::MAX
            } else {
                match number(last) {
                    Some(e) if e >= start => e,
                    _ => return RangeOutcome::Full,
                }
            };
            if start >= size {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
    }
}

/// True when the client's cached copy is current (answer 304).
/// `If-None-Match` wins over `If-Modified-Since`, as RFC 9110 says.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    mtime_secs: i64,
) -> bool {
    if let Some(list) = if_none_match {
        let ours = etag.trim_start_matches("W/");
        return list
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    let Some(since) = if_modified_since.and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    else {
        return false;
    };
    let Ok(mtime) = u64::try_from(mtime_secs) else {
        return false;
    };
    UNIX_EPOCH + Duration::from_secs(mtime) <= since
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        assert_eq!(evaluate_range(None, 10), Full);
        assert_eq!(
            evaluate_range(Some("bytes=0-4"), 10),
            Partial { start: 0, end: 4 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=5-"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 9 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=-30"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            evaluate_range(Some("bytes=2-100"), 10),
            Partial { start: 2, end: 9 }
        );
        assert_eq!(evaluate_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(evaluate_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(evaluate_range(Some("items=0-1"), 10), Full);
        assert_eq!(evaluate_range(Some("bytes=x-1"), 10), Full);
    }

    #[test]
    fn conditionals() {
        let etag = "\"5f-10\"";
        assert!(not_modified(Some("\"5f-10\""), None, etag, 100));
        assert!(not_modified(Some("\"a\", W/\"5f-10\""), None, etag, 100));
        assert!(not_modified(Some("*"), None, etag, 100));
        assert!(!not_modified(
            Some("\"other\""),
            Some("Thu, 01 Jan 2099 00:00:00 GMT"),
            etag,
            100
        ));
        assert!(not_modified(
            None,
            Some("Thu, 01 Jan 1970 00:01:40 GMT"),
            etag,
            100
        ));
        assert!(!not_modified(
            None,
            Some("Thu, 01 Jan 1970 00:01:39 GMT"),
            etag,
            100
        ));
        assert!(!not_modified(None, Some("garbage"), etag, 100));
        assert!(!not_modified(None, None, etag, 100));
    }
}

//! Conditional requests (RFC 9110 section 13): `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since` and
//! `If-Range`, evaluated against a file's validators in the order of
//! section 13.2.2. Pure functions; the range itself is `range.rs`'s.

/// The conditional header fields of a request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Conditions {
    pub(crate) if_match: Option<String>,
    pub(crate) if_unmodified_since: Option<String>,
    pub(crate) if_none_match: Option<String>,
    pub(crate) if_modified_since: Option<String>,
    pub(crate) if_range: Option<String>,
}

impl Conditions {
    /// No conditional header at all.
    pub(crate) const NONE: Conditions = Conditions {
        if_match: None,
        if_unmodified_since: None,
        if_none_match: None,
        if_modified_since: None,
        if_range: None,
    };

    /// Boxed when any field was sent (most requests send none, and a
    /// request stays small).
    pub(crate) fn boxed(self) -> Option<Box<Conditions>> {
        (self != Conditions::NONE).then(|| Box::new(self))
    }

    /// Keeps header `name` if it is one of the five; true when it was.
    /// (The request's parser tells the fields apart itself.)
    #[cfg(test)]
    pub(crate) fn record(&mut self, name: &str, value: &[u8]) -> bool {
        let which = match name.to_ascii_lowercase().as_str() {
            "if-match" => Condition::Match,
            "if-none-match" => Condition::NoneMatch,
            "if-unmodified-since" => Condition::UnmodifiedSince,
            "if-modified-since" => Condition::ModifiedSince,
            "if-range" => Condition::Range,
            _ => return false,
        };
        self.set(which, value);
        true
    }

    /// Keeps one line of field `which`. The two list fields gather every
    /// line sent; for the others the last line counts.
    pub(crate) fn set(&mut self, which: Condition, value: &[u8]) {
        let (field, gathers) = match which {
            Condition::Match => (&mut self.if_match, true),
            Condition::NoneMatch => (&mut self.if_none_match, true),
            Condition::UnmodifiedSince => (&mut self.if_unmodified_since, false),
            Condition::ModifiedSince => (&mut self.if_modified_since, false),
            Condition::Range => (&mut self.if_range, false),
        };
        let value = &*String::from_utf8_lossy(value);
        match field {
            Some(list) if gathers => {
                list.push_str(", ");
                list.push_str(value);
            }
            _ => *field = Some(value.to_string()),
        }
    }
}

/// One of the five conditional header fields (`If-` and this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Match,
    NoneMatch,
    UnmodifiedSince,
    ModifiedSince,
    Range,
}

/// What a file is compared by: its (strong) entity tag, with its quotes,
/// and its modification time in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validators<'a> {
    pub(crate) etag: &'a str,
    pub(crate) mtime_secs: i64,
}

/// The outcome of the preconditions of a GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve the file; a `Range` applies only when `range_applies`
    /// (`If-Range` did not rule it out).
    Proceed { range_applies: bool },
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Evaluates `c` in the order of RFC 9110 section 13.2.2 for a GET or
/// HEAD of a file with validators `v`, at `now_secs` (the wall clock, for
/// refusing an `If-Modified-Since` in the future).
pub(crate) fn evaluate(c: &Conditions, v: Validators<'_>, now_secs: impl Fn() -> i64) -> Verdict {
    let date = |text: &Option<String>| text.as_deref().and_then(parse_date);
    // 1. If-Match, else 2. If-Unmodified-Since.
    if let Some(list) = &c.if_match {
        if !list_matches(list, v.etag, Comparison::Strong) {
            return Verdict::PreconditionFailed;
        }
    } else if let Some(since) = date(&c.if_unmodified_since) {
        if v.mtime_secs > since {
            return Verdict::PreconditionFailed;
        }
    }
    // 3. If-None-Match, else 4. If-Modified-Since (not in the future).
    if let Some(list) = &c.if_none_match {
        if list_matches(list, v.etag, Comparison::Weak) {
            return Verdict::NotModified;
        }
    } else if let Some(since) = date(&c.if_modified_since).filter(|&s| s <= now_secs()) {
        if v.mtime_secs <= since {
            return Verdict::NotModified;
        }
    }
    // 5. If-Range.
    let range_applies = c.if_range.as_deref().is_none_or(|r| if_range_holds(r, v));
    Verdict::Proceed { range_applies }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and equal (If-Match, If-Range).
    Strong,
    /// Equal once `W/` is set aside (If-None-Match).
    Weak,
}

/// True when `list` (`*` or entity tags) has a tag that matches ours.
/// A malformed list matches nothing.
fn list_matches(list: &str, ours: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some(tags) = entity_tags(list) else {
        return false;
    };
    tags.iter()
        .any(|&(weak, tag)| tag == ours && (comparison == Comparison::Weak || !weak))
}

/// `#entity-tag`: each as (weak, the opaque tag with its quotes); `None`
/// for a malformed list. Empty list elements are allowed.
fn entity_tags(list: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = list.trim_start_matches([' ', '\t', ',']);
    while !rest.is_empty() {
        let (weak, tail) = match rest.strip_prefix("W/") {
            Some(tail) => (true, tail),
            None => (false, rest),
        };
        let tail = tail.strip_prefix('"')?;
        let close = tail.find('"')?;
        tags.push((weak, &rest[rest.len() - tail.len() - 1..][..close + 2]));
        rest = tail[close + 1..].trim_start_matches([' ', '\t']);
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?.trim_start_matches([' ', '\t', ',']);
        }
    }
    Some(tags)
}

/// `If-Range` (RFC 9110 13.1.5): an entity tag that matches ours by the
/// strong comparison (a weak one never does), or a date exactly equal to
/// the file's Last-Modified.
fn if_range_holds(value: &str, v: Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return matches!(entity_tags(value).as_deref(), Some([(false, tag)]) if *tag == v.etag);
    }
    parse_date(value) == Some(v.mtime_secs)
}

/// An HTTP date as seconds since the epoch.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"5f-10\"";
    /// 100 s after the epoch, as the file's Last-Modified.
    const MTIME: &str = "Thu, 01 Jan 1970 00:01:40 GMT";
    const BEFORE: &str = "Thu, 01 Jan 1970 00:01:39 GMT";
    const AFTER: &str = "Thu, 01 Jan 1970 00:01:41 GMT";
    const NOW: i64 = 1000;

    fn verdict(headers: &[(&str, &str)]) -> Verdict {
        let mut c = Conditions::default();
        for (name, value) in headers {
            assert!(c.record(name, value.as_bytes()), "{name} is conditional");
        }
        let v = Validators {
            etag: ETAG,
            mtime_secs: 100,
        };
        evaluate(&c, v, || NOW)
    }

    const OK: Verdict = Verdict::Proceed {
        range_applies: true,
    };
    const NO_RANGE: Verdict = Verdict::Proceed {
        range_applies: false,
    };
    use Verdict::{NotModified, PreconditionFailed};

    #[test]
    fn if_none_match_and_if_modified_since() {
        assert_eq!(verdict(&[]), OK);
        assert_eq!(verdict(&[("If-None-Match", ETAG)]), NotModified);
        assert_eq!(
            verdict(&[("If-None-Match", "\"a\", W/\"5f-10\"")]),
            NotModified
        );
        assert_eq!(verdict(&[("If-None-Match", "*")]), NotModified);
        assert_eq!(
            verdict(&[("If-None-Match", "\"a\""), ("If-None-Match", ETAG)]),
            NotModified
        );
        assert_eq!(
            verdict(&[("If-None-Match", "\"other\""), ("If-Modified-Since", AFTER)]),
            OK
        );
        assert_eq!(verdict(&[("If-None-Match", "garbage")]), OK);
        assert_eq!(verdict(&[("If-Modified-Since", MTIME)]), NotModified);
        assert_eq!(verdict(&[("If-Modified-Since", BEFORE)]), OK);
        assert_eq!(verdict(&[("If-Modified-Since", "garbage")]), OK);
    }

    #[test]
    fn if_modified_since_in_the_future_is_ignored() {
        assert_eq!(
            verdict(&[("If-Modified-Since", "Thu, 01 Jan 1970 00:16:39 GMT")]),
            NotModified,
            "999 s is not after now (1000 s)"
        );
        assert_eq!(
            verdict(&[("If-Modified-Since", "Thu, 01 Jan 1970 00:16:41 GMT")]),
            OK
        );
        assert_eq!(
            verdict(&[("If-Modified-Since", "Thu, 01 Jan 2099 00:00:00 GMT")]),
            OK
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        assert_eq!(verdict(&[("If-Match", ETAG)]), OK);
        assert_eq!(verdict(&[("If-Match", "*")]), OK);
        assert_eq!(verdict(&[("If-Match", "\"a\", \"5f-10\"")]), OK);
        assert_eq!(verdict(&[("If-Match", "\"a\"")]), PreconditionFailed);
        assert_eq!(
            verdict(&[("If-Match", "W/\"5f-10\"")]),
            PreconditionFailed,
            "weak never matches"
        );
        assert_eq!(verdict(&[("If-Match", "garbage")]), PreconditionFailed);
        assert_eq!(verdict(&[("If-Unmodified-Since", MTIME)]), OK);
        assert_eq!(verdict(&[("If-Unmodified-Since", AFTER)]), OK);
        assert_eq!(
            verdict(&[("If-Unmodified-Since", BEFORE)]),
            PreconditionFailed
        );
        assert_eq!(verdict(&[("If-Unmodified-Since", "garbage")]), OK);
    }

    #[test]
    fn the_order_of_rfc_9110_13_2_2() {
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            verdict(&[("If-Match", ETAG), ("If-Unmodified-Since", BEFORE)]),
            OK
        );
        // A failed If-Match is 412 even when If-None-Match would say 304.
        assert_eq!(
            verdict(&[("If-Match", "\"a\""), ("If-None-Match", ETAG)]),
            PreconditionFailed
        );
        assert_eq!(
            verdict(&[
                ("If-Unmodified-Since", BEFORE),
                ("If-Modified-Since", MTIME)
            ]),
            PreconditionFailed
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            verdict(&[("If-None-Match", "\"a\""), ("If-Modified-Since", MTIME)]),
            OK
        );
        // 304 before If-Range is looked at.
        assert_eq!(
            verdict(&[("If-None-Match", ETAG), ("If-Range", "\"a\"")]),
            NotModified
        );
        assert_eq!(
            verdict(&[("If-Match", ETAG), ("If-Range", "\"a\"")]),
            NO_RANGE
        );
    }

    #[test]
    fn if_range() {
        assert_eq!(verdict(&[("If-Range", ETAG)]), OK);
        assert_eq!(verdict(&[("If-Range", "\"other\"")]), NO_RANGE);
        assert_eq!(
            verdict(&[("If-Range", "W/\"5f-10\"")]),
            NO_RANGE,
            "weak never matches"
        );
        assert_eq!(verdict(&[("If-Range", MTIME)]), OK);
        assert_eq!(
            verdict(&[("If-Range", AFTER)]),
            NO_RANGE,
            "only an exact date"
        );
        assert_eq!(verdict(&[("If-Range", BEFORE)]), NO_RANGE);
        assert_eq!(verdict(&[("If-Range", "garbage")]), NO_RANGE);
        assert_eq!(
            verdict(&[("If-Range", "\"a\", \"5f-10\"")]),
            NO_RANGE,
            "one tag only"
        );
    }

    #[test]
    fn entity_tag_lists() {
        assert_eq!(
            entity_tags(" \"a\" , W/\"b,c\",,\"\" "),
            Some(vec![(false, "\"a\""), (true, "\"b,c\""), (false, "\"\"")])
        );
        assert_eq!(entity_tags("\"a\" \"b\""), None);
        assert_eq!(entity_tags("\"open"), None);
        assert_eq!(entity_tags("w/\"a\""), None);
    }
}

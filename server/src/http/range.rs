//! `Range: bytes=...` (RFC 9110 section 14): which bytes of a file of a
//! given size a request asks for.
//!
//! Several ranges are sorted and coalesced where they overlap or touch.
//! A malformed header, another unit, a range whose last byte comes
//! before its first, or any malformed element makes the whole header
//! ignored (the full 200), as section 14.2 allows. Against range abuse
//! (the CVE-2011-3192 kind), the header is ignored too when it holds
//! more than [`MAX_RANGES`] ranges or when the ranges together ask for
//! more bytes than the file has (heavy overlap), as nginx does.

/// The most ranges one header may hold; more and the whole file is sent.
/// Clients that resume or fetch pieces ask for a few; 16 leaves room for
/// PDF readers and the like (Apache allows 200 parts by default, nginx
/// bounds by total size only, like the overlap rule here).
pub(crate) const MAX_RANGES: usize = 16;

/// Bytes `start..=end` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl ByteRange {
    pub(crate) fn len(self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// No range, or one that is ignored (see the module docs): send the
    /// whole file.
    Full,
    /// These ranges, sorted, none overlapping or touching another; one or
    /// more.
    Partial(Vec<ByteRange>),
    /// No range could be satisfied: 416.
    Unsatisfiable,
}

/// Evaluates a `Range` header against a file of `size` bytes.
pub(crate) fn evaluate_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(specs) = header.and_then(range_specs) else {
        return RangeOutcome::Full;
    };
    if specs.len() > MAX_RANGES {
        return RangeOutcome::Full;
    }
    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|spec| spec.resolve(size)).collect();
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    let asked: u64 = ranges.iter().map(|r| r.len()).fold(0, u64::saturating_add);
    if asked > size {
        return RangeOutcome::Full;
    }
    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(1) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    RangeOutcome::Partial(merged)
}

/// One element of a range set, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes this spec covers in a file of `size` bytes, if any.
    fn resolve(self, size: u64) -> Option<ByteRange> {
        match self {
            Spec::From { first, .. } if first >= size => None,
            Spec::From { first, last } => Some(ByteRange {
                start: first,
                end: last.unwrap_or(u64::MAX).min(size - 1),
            }),
            Spec::Suffix(0) => None,
            Spec::Suffix(_) if size == 0 => None,
            Spec::Suffix(n) => Some(ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }),
        }
    }
}

/// `bytes=` and its range set, or `None` for anything malformed (the
/// header is then ignored). Bounded: parsing stops, and the header is
/// ignored, past [`MAX_RANGES`] + 1 elements.
fn range_specs(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for element in set.split(',').map(|e| e.trim_matches([' ', '\t'])) {
        if element.is_empty() {
            continue;
        }
        if specs.len() > MAX_RANGES {
            break;
        }
        let (first, last) = element.split_once('-')?;
        let spec = match (number(first), last) {
            (None, _) if first.is_empty() => Spec::Suffix(number(last)?),
            (None, _) => return None,
            (Some(first), "") => Spec::From { first, last: None },
            (Some(first), last) => {
                let last = number(last)?;
                if last < first {
                    return None;
                }
                Spec::From {
                    first,
                    last: Some(last),
                }
            }
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// `1*DIGIT`, fitting a u64.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::{Full, Partial, Unsatisfiable};

    fn parts(pairs: &[(u64, u64)]) -> RangeOutcome {
        Partial(
            pairs
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect(),
        )
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate_range(None, 10), Full);
        assert_eq!(evaluate_range(Some("bytes=0-4"), 10), parts(&[(0, 4)]));
        assert_eq!(evaluate_range(Some("bytes=5-"), 10), parts(&[(5, 9)]));
        assert_eq!(evaluate_range(Some("bytes=-3"), 10), parts(&[(7, 9)]));
        assert_eq!(evaluate_range(Some("bytes=-30"), 10), parts(&[(0, 9)]));
        assert_eq!(evaluate_range(Some("bytes=2-100"), 10), parts(&[(2, 9)]));
        assert_eq!(evaluate_range(Some("Bytes = 2-3"), 10), parts(&[(2, 3)]));
        assert_eq!(evaluate_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for header in [
            "bytes=5-2",
            "items=0-1",
            "bytes=x-1",
            "bytes=",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes= 1 - 2",
            "bytes=0-1,5-2",
            "bytes=0-1,junk",
            "bytes=99999999999999999999-",
            "0-1",
        ] {
            assert_eq!(evaluate_range(Some(header), 10), Full, "{header:?}");
        }
    }

    #[test]
    fn several_ranges_are_sorted_and_coalesced() {
        assert_eq!(
            evaluate_range(Some("bytes=0-1,4-5"), 10),
            parts(&[(0, 1), (4, 5)])
        );
        assert_eq!(
            evaluate_range(Some("bytes=6-7, 0-1"), 10),
            parts(&[(0, 1), (6, 7)])
        );
        // Adjacent and overlapping ranges merge.
        assert_eq!(evaluate_range(Some("bytes=0-1,2-3"), 10), parts(&[(0, 3)]));
        assert_eq!(
            evaluate_range(Some("bytes=0-2,2-3,8-"), 10),
            parts(&[(0, 3), (8, 9)])
        );
        assert_eq!(
            evaluate_range(Some("bytes=-2,0-0"), 10),
            parts(&[(0, 0), (8, 9)])
        );
        // Unsatisfiable elements are dropped; all unsatisfiable is 416.
        assert_eq!(
            evaluate_range(Some("bytes=0-1,20-30"), 10),
            parts(&[(0, 1)])
        );
        assert_eq!(evaluate_range(Some("bytes=20-30,40-"), 10), Unsatisfiable);
        assert_eq!(
            evaluate_range(Some("bytes=0-1,,3-4,"), 10),
            parts(&[(0, 1), (3, 4)])
        );
    }

    #[test]
    fn range_abuse_gets_the_whole_file() {
        let many: Vec<String> = (0..=MAX_RANGES as u64)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        let header = format!("bytes={}", many.join(","));
        assert_eq!(evaluate_range(Some(&header), 1000), Full);
        let header = format!("bytes={}", many[..MAX_RANGES].join(","));
        assert!(matches!(evaluate_range(Some(&header), 1000), Partial(r) if r.len() == MAX_RANGES));
        // Overlap asking for more bytes than the file has.
        assert_eq!(evaluate_range(Some("bytes=0-,0-"), 10), Full);
        assert_eq!(evaluate_range(Some("bytes=0-6,3-9"), 10), Full);
        assert_eq!(evaluate_range(Some("bytes=0-"), 10), parts(&[(0, 9)]));
    }
}

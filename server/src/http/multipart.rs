//! The frame of a `multipart/byteranges` body (RFC 9110 section 14.6):
//! the boundary, each part's head (`Content-Type`, `Content-Range`), the
//! closing delimiter, and the body's total length. The file bytes of each
//! part are not here: the caller queues them between the part heads.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::range::ByteRange;

/// A multipart body's frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multipart {
    /// The `Content-Type` header line of the response, CRLF included.
    pub(crate) content_type_line: String,
    /// Each part's head and the range whose bytes follow it.
    pub(crate) parts: Vec<(Vec<u8>, ByteRange)>,
    /// The closing delimiter, after the last part's bytes.
    pub(crate) closing: Vec<u8>,
    /// The whole body's length: the `Content-Length`.
    pub(crate) length: u64,
}

/// A boundary that no file is likely to hold: random bits from the
/// standard library's hasher keys (seeded per process and per call).
pub(crate) fn new_boundary() -> String {
    format!("amped-{:016x}", RandomState::new().hash_one(0u8))
}

/// The frame of `ranges` of a file of `size` bytes and type
/// `content_type`, delimited by `boundary`.
pub(crate) fn frame(
    ranges: &[ByteRange],
    size: u64,
    content_type: &str,
    boundary: &str,
) -> Multipart {
    let mut length = 0;
    let parts = ranges
        .iter()
        .enumerate()
        .map(|(i, &range)| {
            let head = format!(
                "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
                if i == 0 { "" } else { "\r\n" },
                range.start,
                range.end
            )
            .into_bytes();
            length += head.len() as u64 + range.len();
            (head, range)
        })
        .collect();
    let closing = format!("\r\n--{boundary}--\r\n").into_bytes();
    length += closing.len() as u64;
    Multipart {
        content_type_line: format!("Content-Type: multipart/byteranges; boundary={boundary}\r\n"),
        parts,
        closing,
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_around_two_parts() {
        let ranges = [
            ByteRange { start: 0, end: 1 },
            ByteRange { start: 5, end: 7 },
        ];
        let m = frame(&ranges, 10, "text/plain", "B");
        assert_eq!(
            m.content_type_line,
            "Content-Type: multipart/byteranges; boundary=B\r\n"
        );
        let file = b"0123456789";
        let mut body = Vec::new();
        for (head, range) in &m.parts {
            body.extend_from_slice(head);
            body.extend_from_slice(&file[range.start as usize..=range.end as usize]);
        }
        body.extend_from_slice(&m.closing);
        assert_eq!(
            String::from_utf8_lossy(&body),
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567\
             \r\n--B--\r\n"
        );
        assert_eq!(m.length, body.len() as u64);
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(new_boundary(), new_boundary());
        assert!(new_boundary().starts_with("amped-"));
    }
}

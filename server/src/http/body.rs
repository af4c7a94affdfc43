//! Response-body framing (RFC 9112 section 6): a body is delimited by its
//! `Content-Length`, by the chunked transfer coding, or by the server
//! closing the connection. [`end_head`] is the one place that picks the
//! framing, writes its header and the `Connection` header, and decides
//! whether the connection can be kept; it returns the [`BodyEncoder`]
//! through which the body then goes, for static files and scripts alike
//! (after hyper's `Encoder` with its `Kind { Length, Chunked,
//! CloseDelimited }`). The encoder only frames: it returns what to queue,
//! and the output queue (`output/`) queues it.

use super::head_writer::{content_length, push_hex};
use crate::http::keep_alive;

/// What is known of a response's body when its head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// The status has no body (204, 304): no framing header at all.
    NoBody,
    /// A HEAD request: the head says what a GET would get (its length,
    /// when known), and no body follows.
    HeadOnly(Option<u64>),
    /// A body follows, of this length if known.
    Body(Option<u64>),
}

/// Frames a response body's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEncoder {
    /// Exactly this many bytes still to pass on; more is dropped.
    Length(u64),
    /// Each piece as a chunk; a last chunk at the end.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    CloseDelimited,
    /// No body goes out; what is given is dropped.
    Empty,
}

impl BodyEncoder {
    /// Frames a piece of the body: the bytes to queue (none when nothing
    /// of it goes out) and how many body bytes they carry.
    pub(crate) fn frame(&mut self, data: &[u8]) -> (Vec<u8>, u64) {
        if data.is_empty() {
            return (Vec::new(), 0);
        }
        match self {
            BodyEncoder::Empty => (Vec::new(), 0),
            BodyEncoder::CloseDelimited => (data.to_vec(), data.len() as u64),
            BodyEncoder::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                (data[..take as usize].to_vec(), take)
            }
            BodyEncoder::Chunked => {
                let mut chunk = Vec::with_capacity(data.len() + 12);
                push_hex(&mut chunk, data.len() as u64);
                chunk.extend_from_slice(b"\r\n");
                chunk.extend_from_slice(data);
                chunk.extend_from_slice(b"\r\n");
                (chunk, data.len() as u64)
            }
        }
    }

    /// For bytes `start..end` of something queued as it is (shared bytes,
    /// a file): where they end once the body's length is allowed for.
    /// `None` unless this is a length body: only those are queued so.
    pub(crate) fn take_range(&mut self, start: u64, end: u64) -> Option<u64> {
        let BodyEncoder::Length(left) = self else {
            return None;
        };
        let end = end.min(start.saturating_add(*left));
        *left -= end.saturating_sub(start);
        Some(end)
    }

    /// Ends the body: the bytes to queue last (a chunked body's last
    /// chunk), and true when the body is complete as framed, so that the
    /// connection may be kept; false for a length body cut short and for
    /// a close-delimited one.
    pub(crate) fn finish(&mut self) -> (&'static [u8], bool) {
        match *self {
            BodyEncoder::Chunked => {
                *self = BodyEncoder::Empty;
                (b"0\r\n\r\n", true)
            }
            BodyEncoder::Length(left) => (b"", left == 0),
            BodyEncoder::CloseDelimited => (b"", false),
            BodyEncoder::Empty => (b"", true),
        }
    }
}

/// Ends a response head: the framing header `body` needs, the
/// `Connection` header and the blank line. Returns the body's encoder and
/// whether the connection is kept: as the client asked (`keep_alive`),
/// unless the body can only end with the connection.
pub(crate) fn end_head(
    head: &mut Vec<u8>,
    body: BodyKind,
    keep_alive: bool,
    http10: bool,
) -> (BodyEncoder, bool) {
    let encoder = match body {
        BodyKind::NoBody => BodyEncoder::Empty,
        BodyKind::HeadOnly(length) => {
            if let Some(n) = length {
                content_length(head, n);
            }
            BodyEncoder::Empty
        }
        BodyKind::Body(Some(n)) => {
            content_length(head, n);
            BodyEncoder::Length(n)
        }
        BodyKind::Body(None) if http10 => BodyEncoder::CloseDelimited,
        BodyKind::Body(None) => {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            BodyEncoder::Chunked
        }
    };
    let keep_alive = keep_alive::after_head(keep_alive, encoder == BodyEncoder::CloseDelimited);
    if !keep_alive {
        head.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        head.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
    (encoder, keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framing_follows_what_is_known() {
        let cases = [
            (BodyKind::Body(Some(5)), false, "Content-Length: 5\r\n\r\n"),
            (
                BodyKind::Body(None),
                false,
                "Transfer-Encoding: chunked\r\n\r\n",
            ),
            (BodyKind::Body(None), true, "Connection: close\r\n\r\n"),
            (
                BodyKind::HeadOnly(Some(7)),
                false,
                "Content-Length: 7\r\n\r\n",
            ),
            (BodyKind::HeadOnly(None), false, "\r\n"),
            (BodyKind::NoBody, false, "\r\n"),
        ];
        for (kind, http10, expected) in cases {
            let mut head = Vec::new();
            let (_, keep) = end_head(&mut head, kind, true, http10);
            let expected = match (http10, keep) {
                (true, true) => expected.replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n"),
                _ => expected.to_string(),
            };
            assert_eq!(String::from_utf8_lossy(&head), expected, "{kind:?}");
        }
        let mut head = Vec::new();
        assert_eq!(
            end_head(&mut head, BodyKind::Body(None), true, true),
            (BodyEncoder::CloseDelimited, false)
        );
    }

    #[test]
    fn bodies_are_framed() {
        let mut chunked = BodyEncoder::Chunked;
        assert_eq!(chunked.frame(b"hello"), (b"5\r\nhello\r\n".to_vec(), 5));
        assert_eq!(chunked.frame(b""), (Vec::new(), 0));
        assert_eq!(chunked.finish(), (&b"0\r\n\r\n"[..], true));
        assert_eq!(chunked, BodyEncoder::Empty, "one last chunk only");

        let mut length = BodyEncoder::Length(3);
        assert_eq!(length.frame(b"abcdef"), (b"abc".to_vec(), 3));
        assert_eq!(length.frame(b"more"), (Vec::new(), 0));
        assert_eq!(length.finish(), (&b""[..], true));
        let mut short = BodyEncoder::Length(3);
        short.frame(b"ab");
        assert_eq!(short.finish(), (&b""[..], false));

        let mut close = BodyEncoder::CloseDelimited;
        assert_eq!(close.frame(b"raw"), (b"raw".to_vec(), 3));
        assert_eq!(close.finish(), (&b""[..], false));
        let mut empty = BodyEncoder::Empty;
        assert_eq!(empty.frame(b"dropped"), (Vec::new(), 0));
    }

    #[test]
    fn ranges_are_cut_to_a_length_body() {
        let mut length = BodyEncoder::Length(4);
        assert_eq!(length.take_range(2, 9), Some(6));
        assert_eq!(length.take_range(6, 9), Some(6), "nothing left");
        assert_eq!(BodyEncoder::Chunked.take_range(0, 5), None);
        assert_eq!(
            BodyEncoder::Length(u64::MAX).take_range(u64::MAX - 1, u64::MAX),
            Some(u64::MAX)
        );
    }
}

//! Response-body framing (RFC 9112 section 6): a body is delimited by its
//! `Content-Length`, by the chunked transfer coding, or by the server
//! closing the connection. [`end_head`] is the one place that picks the
//! framing, writes its header and the `Connection` header, and decides
//! whether the connection can be kept; it returns the [`BodyEncoder`]
//! through which the body then goes, for static files and scripts alike
//! (after hyper's `Encoder` with its `Kind { Length, Chunked,
//! CloseDelimited }`).

use std::rc::Rc;

use super::response::{content_length, push_hex};
use crate::http::keep_alive;
use crate::output::Output;
use crate::send::OpenFile;

/// What is known of a response's body when its head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// The status has no body (204, 304): no framing header at all.
    NoBody,
    /// A HEAD request: the head says what a GET would get (its length,
    /// when known), and no body follows.
    HeadOnly(Option<u64>),
    /// A body follows, of this length if known.
    Body(Option<u64>),
}

/// Frames a response body's pieces onto a connection's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoder {
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
    /// Queues a piece of the body. Returns the body bytes passed on.
    pub fn encode(&mut self, data: &[u8], out: &mut Output) -> u64 {
        if data.is_empty() {
            return 0;
        }
        match self {
            BodyEncoder::Empty => 0,
            BodyEncoder::CloseDelimited => {
                out.push_owned(data.to_vec());
                data.len() as u64
            }
            BodyEncoder::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                out.push_owned(data[..take as usize].to_vec());
                take
            }
            BodyEncoder::Chunked => {
                let mut chunk = Vec::with_capacity(data.len() + 12);
                push_hex(&mut chunk, data.len() as u64);
                chunk.extend_from_slice(b"\r\n");
                chunk.extend_from_slice(data);
                chunk.extend_from_slice(b"\r\n");
                out.push_owned(chunk);
                data.len() as u64
            }
        }
    }

    /// Queues `bytes[start..end]` of a length body without copying.
    pub fn encode_shared(
        &mut self,
        bytes: Rc<[u8]>,
        start: usize,
        end: usize,
        out: &mut Output,
    ) -> u64 {
        let BodyEncoder::Length(left) = self else {
            return 0;
        };
        let end = end.min(start.saturating_add(*left as usize));
        let n = end.saturating_sub(start) as u64;
        *left -= n;
        out.push_shared(bytes, start, end);
        n
    }

    /// Queues bytes `start..end` of a file of a length body, to be sent
    /// with `sendfile`.
    pub fn encode_file(
        &mut self,
        file: Rc<OpenFile>,
        start: u64,
        end: u64,
        out: &mut Output,
    ) -> u64 {
        let BodyEncoder::Length(left) = self else {
            return 0;
        };
        let end = end.min(start.saturating_add(*left));
        let n = end.saturating_sub(start);
        *left -= n;
        out.push_file(file, start, end);
        n
    }

    /// Ends the body: the last chunk of a chunked one. True when the body
    /// is complete as framed, so that the connection may be kept; false
    /// for a length body cut short and for a close-delimited one.
    pub fn finish(&mut self, out: &mut Output) -> bool {
        match *self {
            BodyEncoder::Chunked => {
                out.push_owned(b"0\r\n\r\n".to_vec());
                *self = BodyEncoder::Empty;
                true
            }
            BodyEncoder::Length(left) => left == 0,
            BodyEncoder::CloseDelimited => false,
            BodyEncoder::Empty => true,
        }
    }
}

/// Ends a response head: the framing header `body` needs, the
/// `Connection` header and the blank line. Returns the body's encoder and
/// whether the connection is kept: as the client asked (`keep_alive`),
/// unless the body can only end with the connection.
pub fn end_head(
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
    let keep_alive = keep_alive::after_head(keep_alive, encoder);
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
    use crate::output::written;

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
        let mut out = Output::default();
        let mut chunked = BodyEncoder::Chunked;
        assert_eq!(chunked.encode(b"hello", &mut out), 5);
        assert_eq!(chunked.encode(b"", &mut out), 0);
        assert!(chunked.finish(&mut out));
        assert_eq!(written(&mut out), "5\r\nhello\r\n0\r\n\r\n");

        let mut length = BodyEncoder::Length(3);
        assert_eq!(length.encode(b"abcdef", &mut out), 3);
        assert!(length.finish(&mut out));
        assert_eq!(written(&mut out), "abc");
        let mut short = BodyEncoder::Length(3);
        short.encode(b"ab", &mut out);
        assert!(!short.finish(&mut out));

        let mut close = BodyEncoder::CloseDelimited;
        close.encode(b"raw", &mut out);
        assert!(!close.finish(&mut out));
        let mut empty = BodyEncoder::Empty;
        assert_eq!(empty.encode(b"dropped", &mut out), 0);
        assert_eq!(written(&mut out), "abraw");

        let mut shared = BodyEncoder::Length(4);
        assert_eq!(
            shared.encode_shared(Rc::from(&b"0123456789"[..]), 2, 9, &mut out),
            4
        );
        assert_eq!(written(&mut out), "2345");
    }
}

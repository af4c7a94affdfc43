//! Reading a large response off a raw socket piece by piece, for tests
//! that must act in the middle of a download (signal the server, sample
//! its memory) or must not hold a 1 GiB body in memory: the head alone,
//! then the body in pieces handed to a callback, or appended to a buffer
//! up to a given length.

use std::io::{self, ErrorKind, Read};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Read granularity.
const PIECE: usize = 1 << 20;

/// A response head and the body bytes that arrived with it.
#[derive(Debug, Clone)]
pub struct RawHead {
    pub status: u16,
    /// Status line and header fields, CRLF-separated, without the blank
    /// line.
    pub text: String,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
    /// Body bytes read together with the head.
    pub leftover: Vec<u8>,
}

impl RawHead {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads up to and including the blank line that ends a response head.
pub fn read_head(stream: &mut impl Read) -> io::Result<RawHead> {
    let bad = |what: String| io::Error::new(ErrorKind::InvalidData, what);
    let mut buf = Vec::new();
    let mut piece = vec![0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("response head larger than 64 KiB".into()));
        }
        let n = stream.read(&mut piece)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "closed before a complete response head ({:?})",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&piece[..n]);
    };
    let text = String::from_utf8(buf[..end].to_vec())
        .map_err(|_| bad("response head is not UTF-8".into()))?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line in {text:?}")))?;
    let mut head = RawHead {
        status,
        text,
        content_length: None,
        leftover: buf[end + 4..].to_vec(),
    };
    head.content_length = match head.header("Content-Length") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| bad(format!("bad Content-Length {v:?}")))?,
        ),
        None => None,
    };
    Ok(head)
}

/// Appends to `body` from `stream` until it holds `target` bytes. Fails on
/// end-of-file first (saying how far it got).
pub fn fill_to(stream: &mut impl Read, body: &mut Vec<u8>, target: usize) -> io::Result<()> {
    let mut have = body.len();
    body.resize(target.max(have), 0);
    while have < target {
        let end = target.min(have + PIECE);
        match stream.read(&mut body[have..end]) {
            Ok(0) => {
                body.truncate(have);
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("connection closed after {have} of {target} body bytes"),
                ));
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                body.truncate(have);
                return Err(io::Error::new(
                    e.kind(),
                    format!("after {have} of {target} body bytes: {e}"),
                ));
            }
        }
    }
    Ok(())
}

/// Reads `len` body bytes (the first of them already in `leftover`),
/// handing each piece to `each` and keeping none; returns how many bytes
/// came before end-of-file or `len` was reached.
pub fn stream_body(
    stream: &mut impl Read,
    leftover: &[u8],
    len: u64,
    mut each: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let first = leftover
        .len()
        .min(usize::try_from(len).unwrap_or(usize::MAX));
    each(&leftover[..first]);
    let mut have = first as u64;
    let mut piece = vec![0u8; PIECE];
    while have < len {
        let want = usize::try_from(len - have).map_or(PIECE, |rest| rest.min(PIECE));
        match stream.read(&mut piece[..want]) {
            Ok(0) => break,
            Ok(n) => {
                each(&piece[..n]);
                have += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("after {have} of {len} body bytes: {e}"),
                ))
            }
        }
    }
    Ok(have)
}

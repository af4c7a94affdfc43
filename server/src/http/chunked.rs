//! An incremental decoder for request bodies sent with
//! `Transfer-Encoding: chunked`, exactly as RFC 9112 section 7.1 writes
//! it. It is fed whatever bytes have arrived and hands back the data
//! bytes; extensions and trailer fields are checked and dropped.
//!
//! Every line ends in CRLF; a chunk-size is hex digits only (no sign, no
//! whitespace before it, whitespace after it only before a `;`); an
//! extension is `;` name [`=` value], the name a token and the value a
//! token or a quoted-string; a trailer field is checked like a header
//! field (a token name, a colon, a value without control characters, no
//! line folding). Lines, extensions and trailers are bounded. Anything
//! else is a [`ChunkedError`], which the server answers with 400 and a
//! closed connection.

use crate::http::request::{MAX_HEAD, MAX_HEADERS};
use crate::http::syntax::{is_field_value, is_tchar, is_token, quoted_string_len};

/// Longest chunk-size line (with its extensions) accepted: extensions are
/// not used by any client amped knows of, so a short line is enough.
const MAX_LINE: usize = 1024;
/// Extension bytes accepted over a whole body: bounds the work a client
/// can cause with many tiny chunks that each carry extensions (hyper
/// allows 16 KiB too).
const MAX_EXTENSIONS: usize = 16 * 1024;
/// The most hex digits in a chunk-size (leading zeros included): 16
/// digits already reach 2^64.
const MAX_SIZE_DIGITS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// Trailer lines after the last chunk.
    Trailer,
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedError;

/// The decoder.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    /// Extension bytes seen so far (bounded by [`MAX_EXTENSIONS`]).
    extension_bytes: usize,
    /// Trailer bytes and fields seen so far (bounded like a head).
    trailer_bytes: usize,
    trailer_fields: usize,
    /// Data bytes produced so far.
    pub(crate) decoded: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            extension_bytes: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
            decoded: 0,
        }
    }
}

impl ChunkedDecoder {
    /// True once the last chunk and the trailers have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out`, stopping after
    /// `out` would exceed `room` bytes. Returns how many input bytes were
    /// used.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<usize, ChunkedError> {
        let mut used = 0;
        while used < input.len() && self.state != State::Done {
            match self.state {
                State::Data(left) => {
                    let space = room.saturating_sub(out.len());
                    if space == 0 {
                        break;
                    }
                    let take = (left.min((input.len() - used) as u64) as usize).min(space);
                    out.extend_from_slice(&input[used..used + take]);
                    used += take;
                    self.decoded += take as u64;
                    self.state = if left == take as u64 {
                        State::DataCr
                    } else {
                        State::Data(left - take as u64)
                    };
                }
                State::DataCr | State::DataLf => {
                    let expected = if self.state == State::DataCr {
                        (b'\r', State::DataLf)
                    } else {
                        (b'\n', State::Size)
                    };
                    if input[used] != expected.0 {
                        return Err(ChunkedError);
                    }
                    used += 1;
                    self.state = expected.1;
                }
                State::Size | State::Trailer => {
                    let limit = match self.state {
                        State::Size => MAX_LINE,
                        _ => MAX_HEAD.saturating_sub(self.trailer_bytes),
                    };
                    let Some(line) = self.take_line(input, &mut used, limit)? else {
                        break;
                    };
                    self.state = match self.state {
                        State::Size => {
                            let (size, extensions) = parse_size_line(&line)?;
                            self.extension_bytes += extensions;
                            if self.extension_bytes > MAX_EXTENSIONS {
                                return Err(ChunkedError);
                            }
                            match size {
                                0 => State::Trailer,
                                n => State::Data(n),
                            }
                        }
                        _ if line.is_empty() => State::Done,
                        _ => {
                            check_trailer_field(&line)?;
                            self.trailer_bytes += line.len() + 2;
                            self.trailer_fields += 1;
                            if self.trailer_fields > MAX_HEADERS {
                                return Err(ChunkedError);
                            }
                            State::Trailer
                        }
                    };
                }
                State::Done => break,
            }
        }
        Ok(used)
    }

    /// Collects one CRLF-terminated line across calls, without its CRLF;
    /// `Err` for a line longer than `limit` or one ended by a bare LF.
    fn take_line(
        &mut self,
        input: &[u8],
        used: &mut usize,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, ChunkedError> {
        let rest = &input[*used..];
        let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        self.line.extend_from_slice(piece);
        *used += piece.len() + usize::from(complete);
        if self.line.len() > limit.saturating_add(1) {
            return Err(ChunkedError);
        }
        if !complete {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.line);
        if line.pop() != Some(b'\r') {
            return Err(ChunkedError);
        }
        Ok(Some(line))
    }
}

/// Parses `chunk-size [ chunk-ext ]`: the size, and the bytes of the
/// extensions (to be counted against [`MAX_EXTENSIONS`]).
fn parse_size_line(line: &[u8]) -> Result<(u64, usize), ChunkedError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_SIZE_DIGITS {
        return Err(ChunkedError);
    }
    let size = line[..digits].iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16).ok_or(ChunkedError)?;
        n.checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or(ChunkedError)
    })?;
    let extensions = &line[digits..];
    check_extensions(extensions)?;
    Ok((size, extensions.len()))
}

/// `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, and nothing else.
fn check_extensions(mut rest: &[u8]) -> Result<(), ChunkedError> {
    let skip_ws =
        |s: &[u8]| -> usize { s.iter().take_while(|&&b| b == b' ' || b == b'\t').count() };
    while !rest.is_empty() {
        let ws = skip_ws(rest);
        rest = rest[ws..].strip_prefix(b";").ok_or(ChunkedError)?;
        rest = &rest[skip_ws(rest)..];
        let name = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name == 0 {
            return Err(ChunkedError);
        }
        rest = &rest[name..];
        let ws = skip_ws(rest);
        if let Some(value) = rest[ws..].strip_prefix(b"=") {
            let value = &value[skip_ws(value)..];
            let len = match quoted_string_len(value) {
                Some(len) => len,
                None => value.iter().take_while(|&&b| is_tchar(b)).count(),
            };
            if len == 0 {
                return Err(ChunkedError);
            }
            rest = &value[len..];
        }
    }
    Ok(())
}

/// A trailer field, checked like a header field: `name ":" OWS value OWS`
/// with a token name and a value free of control characters; a line that
/// starts with whitespace (obsolete line folding) is refused.
fn check_trailer_field(line: &[u8]) -> Result<(), ChunkedError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(ChunkedError)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if !is_token(name) || !is_field_value(value) {
        return Err(ChunkedError);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, ChunkedError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            let mut at = 0;
            while at < piece.len() && !d.is_done() {
                at += d.decode(&piece[at..], &mut out, usize::MAX)?;
            }
        }
        assert!(d.is_done(), "body not finished");
        Ok(out)
    }

    /// Decodes `input` whole, then byte by byte: both must fail.
    fn refused(input: &[u8]) -> bool {
        let whole = {
            let mut d = ChunkedDecoder::default();
            d.decode(input, &mut Vec::new(), usize::MAX).is_err()
        };
        let bytewise = {
            let mut d = ChunkedDecoder::default();
            let mut out = Vec::new();
            input.iter().any(|b| {
                d.decode(std::slice::from_ref(b), &mut out, usize::MAX)
                    .is_err()
            })
        };
        whole && bytewise
    }

    #[test]
    fn decodes_in_any_pieces() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(decode_all(body, step).expect("valid"), b"hello, world");
        }
    }

    #[test]
    fn the_grammar_allows_these() {
        let valid: [&[u8]; 8] = [
            b"0\r\n\r\n",
            b"000\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a;x\r\n0123456789\r\n0\r\n\r\n",
            b"3 ; name = \"quoted \\\" value\" ;b=tok\r\nabc\r\n0\r\n\r\n",
            b"3\t;n\r\nabc\r\n0;last\r\n\r\n",
            b"0\r\nA: \r\nB:x\r\nC: a b\t\r\n\r\n",
            b"0000000000000003\r\nabc\r\n0\r\n\r\n",
        ];
        for body in valid {
            assert!(
                decode_all(body, 1).is_ok(),
                "{:?} is valid",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn every_bad_form_is_refused() {
        let bad: [&[u8]; 30] = [
            b"zz\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\rX0\r\n\r\n",
            b"5\r\nhello0\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;=v\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"5,6\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"0\r\nNo-Colon\r\n\r\n",
            b"0\r\n Folded: x\r\n\r\n",
            b"0\r\nBad Name: x\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\n\n",
        ];
        for body in bad {
            assert!(
                refused(body),
                "{:?} must be refused",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn lines_extensions_and_trailers_are_bounded() {
        let long_line = [&b"1;"[..], &[b'a'; MAX_LINE][..], b"\r\n"].concat();
        assert!(refused(&long_line));
        let mut d = ChunkedDecoder::default();
        assert!(d
            .decode(&[b'1'; MAX_LINE + 10], &mut Vec::new(), 10)
            .is_err());
        // Many small chunks, each with an extension within the line limit.
        let chunk = [&b"1;"[..], &[b'e'; 500][..], b"\r\nx\r\n"].concat();
        let many = chunk.repeat(MAX_EXTENSIONS / 500 + 1);
        assert!(refused(&many));
        let fields: Vec<u8> = (0..=MAX_HEADERS)
            .flat_map(|i| format!("T{i}: v\r\n").into_bytes())
            .collect();
        assert!(refused(&[&b"0\r\n"[..], &fields, b"\r\n"].concat()));
        let big = [&b"0\r\nT: "[..], &[b'v'; MAX_HEAD][..], b"\r\n\r\n"].concat();
        assert!(refused(&big));
    }

    #[test]
    fn stops_at_the_room_given() {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        let used = d.decode(input, &mut out, 4).expect("valid");
        assert_eq!(out, b"0123");
        out.clear();
        let more = d.decode(&input[used..], &mut out, 100).expect("valid");
        assert_eq!(out, b"456789");
        assert_eq!(used + more, input.len());
        assert!(d.is_done());
    }
}

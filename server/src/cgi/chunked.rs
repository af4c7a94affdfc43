//! An incremental decoder for request bodies sent with
//! `Transfer-Encoding: chunked` (RFC 9112 section 7.1). It is fed whatever
//! bytes have arrived and hands back the data bytes; trailers are read and
//! dropped.

/// Longest chunk-size line (with extensions) accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk.
    Trailer,
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError;

/// The decoder.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    /// Data bytes produced so far.
    pub decoded: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            decoded: 0,
        }
    }
}

impl ChunkedDecoder {
    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out`, stopping after
    /// `out` would exceed `room` bytes. Returns how many input bytes were
    /// used.
    pub fn decode(
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
                        State::DataEnd
                    } else {
                        State::Data(left - take as u64)
                    };
                }
                State::Size | State::DataEnd | State::Trailer => {
                    let Some(line) = self.take_line(input, &mut used)? else {
                        break;
                    };
                    self.state = match self.state {
                        State::Size => match parse_size(&line)? {
                            0 => State::Trailer,
                            n => State::Data(n),
                        },
                        State::DataEnd if line.is_empty() => State::Size,
                        State::DataEnd => return Err(ChunkedError),
                        _ if line.is_empty() => State::Done,
                        _ => State::Trailer,
                    };
                }
                State::Done => break,
            }
        }
        Ok(used)
    }

    /// Collects one CRLF-terminated line across calls.
    fn take_line(
        &mut self,
        input: &[u8],
        used: &mut usize,
    ) -> Result<Option<Vec<u8>>, ChunkedError> {
        let rest = &input[*used..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&rest[..i]);
                *used += i + 1;
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(rest);
                *used = input.len();
                if self.line.len() > MAX_LINE {
                    return Err(ChunkedError);
                }
                Ok(None)
            }
        }
    }
}

fn parse_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(ChunkedError);
    }
    let text = std::str::from_utf8(digits).map_err(|_| ChunkedError)?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkedError)
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

    #[test]
    fn decodes_in_any_pieces() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(decode_all(body, step).expect("valid"), b"hello, world");
        }
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

    #[test]
    fn rejects_garbage() {
        assert!(decode_all(b"zz\r\n", 4).is_err());
        assert!(decode_all(b"3\r\nabcX\r\n0\r\n\r\n", 4).is_err());
        let mut d = ChunkedDecoder::default();
        assert!(d
            .decode(&[b'1'; MAX_LINE + 10], &mut Vec::new(), 10)
            .is_err());
    }
}

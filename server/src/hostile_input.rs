//! Hostile-input checks for the parsers a client or a script feeds: random
//! and mutated bytes never panic, a head that parses ends at a blank line,
//! and a chunked body decodes to the same bytes however it is split.

#[cfg(test)]
mod tests {
    use crate::cgi::script_head::{parse_script_head, HeadParse};
    use crate::http::chunked::ChunkedDecoder;
    use crate::http::parse::parse;
    use crate::http::path::parse_target;
    use crate::http::request::Parsed;

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const SEEDS: [&[u8]; 6] = [
        b"GET /index.html HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n",
        b"POST /cgi-bin/x.cgi/a%20b?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        b"HEAD /a/../b/./c//d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"Status: 200 OK\nContent-Type: text/plain\nLocation: /x\n\nbody",
        b"5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
        b"GET http://h/%2e%2e/%00 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];

    /// Random bytes, and seeds with random bytes flipped, cut or repeated.
    fn inputs() -> Vec<Vec<u8>> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        for _ in 0..3000 {
            let len = rng.below(300);
            out.push((0..len).map(|_| rng.next() as u8).collect());
        }
        for seed in SEEDS {
            for _ in 0..3000 {
                let mut bytes = seed.to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => bytes.truncate(at),
                        _ => {
                            let piece = bytes[at..].to_vec();
                            bytes.extend_from_slice(&piece);
                        }
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
                out.push(bytes);
            }
        }
        out
    }

    #[test]
    fn request_parsing_never_panics_and_stays_within_its_input() {
        for input in inputs() {
            match parse(&input, true) {
                Parsed::Request(r) => {
                    let head = input.get(..r.head_len).expect("the head is in the input");
                    assert!(ends_with_blank_line(head), "{head:?}");
                    assert!(!r.target.key.starts_with('/'));
                    assert!(!r
                        .target
                        .key
                        .split('/')
                        .any(|s| s == ".." || s.starts_with('.')));
                }
                Parsed::Rejected(r) => assert!(r.head_len <= input.len()),
                Parsed::Partial => {}
            }
        }
    }

    #[test]
    fn target_parsing_never_escapes_the_root() {
        for input in inputs() {
            let text = String::from_utf8_lossy(&input);
            if let Ok(target) = parse_target(&text) {
                assert!(!target.key.starts_with('/'), "{:?}", target.key);
                assert!(!target.key.contains('\0'));
                assert!(!target
                    .key
                    .split('/')
                    .any(|s| s == ".." || s == "." || s.starts_with('.')));
            }
        }
    }

    /// True when `head` ends with an empty line (LF or CRLF endings).
    fn ends_with_blank_line(head: &[u8]) -> bool {
        let Some(rest) = head.strip_suffix(b"\n") else {
            return false;
        };
        let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
        rest.is_empty() || rest.ends_with(b"\n")
    }

    /// Decodes `input` fed in two pieces split at `at`, the unused end of
    /// the first piece fed again with the second, as the server feeds what
    /// arrives; the data and whether the body ended, or `None` on an error.
    fn decode_split(input: &[u8], at: usize) -> Option<(Vec<u8>, bool)> {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut pending = input[..at].to_vec();
        let used = decoder.decode(&pending, &mut out, 1 << 20).ok()?;
        pending.drain(..used);
        pending.extend_from_slice(&input[at..]);
        decoder.decode(&pending, &mut out, 1 << 20).ok()?;
        Some((out, decoder.is_done()))
    }

    #[test]
    fn script_heads_end_at_a_blank_line() {
        for input in inputs() {
            if let HeadParse::Complete(_, used) = parse_script_head(&input) {
                let head = input.get(..used).expect("the head is in the input");
                assert!(ends_with_blank_line(head), "{head:?}");
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_alike_however_they_arrive() {
        let mut rng = Rng(0x5eed);
        for input in inputs() {
            let whole = decode_split(&input, input.len());
            for _ in 0..4 {
                let at = rng.below(input.len() + 1);
                assert_eq!(decode_split(&input, at), whole, "{input:?} split at {at}");
            }
        }
    }
}

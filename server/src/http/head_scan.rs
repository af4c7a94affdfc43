//! When a head that is still arriving is worth parsing again. `httparse`
//! starts over from the first byte on every call, so parsing a head on
//! every read would cost time quadratic in its length when a client (or a
//! script) sends it a few bytes at a time. A parse can only reach a new
//! verdict once a line has ended, so a head is parsed again only when the
//! bytes that came since the last parse hold a line feed, when it has
//! passed its size limit, or when its first bytes arrive (so a request
//! that is plainly garbage is still refused at once). That bounds the
//! parses per head by its line count, which the parsers cap.

/// How far a growing head has been looked at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadScan {
    /// Bytes of the head already parsed (0: not parsed yet).
    scanned: usize,
}

impl HeadScan {
    /// True when `head` (the bytes so far; it only grows until
    /// [`reset`](Self::reset)) should be parsed now; `max` is the size
    /// past which the parser refuses it. Counts the bytes as looked at.
    pub(crate) fn ready(&mut self, head: &[u8], max: usize) -> bool {
        let from = self.scanned;
        self.scanned = head.len();
        // A buffer that shrank is a new head.
        from == 0 || from > head.len() || head.len() > max || head[from..].contains(&b'\n')
    }

    /// The head was used up: the next bytes begin a new one.
    pub(crate) fn reset(&mut self) {
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_sent_a_byte_at_a_time_is_parsed_once_a_line() {
        let mut head = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        head.extend_from_slice(format!("X-Long: {}\r\n\r\n", "v".repeat(8000)).as_bytes());
        let mut scan = HeadScan::default();
        let mut buf = Vec::new();
        let mut parses = 0;
        for &b in &head {
            buf.push(b);
            if scan.ready(&buf, 16 * 1024) {
                parses += 1;
            }
        }
        // The first byte, then one parse per line feed (four lines).
        assert_eq!(parses, 5);
    }

    #[test]
    fn past_the_limit_and_after_a_reset_it_parses() {
        let mut scan = HeadScan::default();
        assert!(scan.ready(b"G", 4));
        assert!(!scan.ready(b"GET", 4));
        assert!(!scan.ready(b"GET ", 4));
        assert!(scan.ready(b"GET /", 4), "past the limit");
        scan.reset();
        assert!(scan.ready(b"P", 4));
        assert!(!scan.ready(b"PO", 4));
        assert!(scan.ready(b"P", 4), "a buffer that shrank");
        assert!(scan.ready(b"P\n", 4), "a line ended");
    }
}

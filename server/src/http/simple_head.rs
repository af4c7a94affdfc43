//! A fast path for the request heads most clients send: `GET` or
//! `HEAD`, a target of visible ASCII, `HTTP/1.0` or `HTTP/1.1`, at most
//! [`SIMPLE_FIELDS`] fields of a token name, `:`, spaces, and a value of
//! visible ASCII and spaces, every line ending in CRLF. Such a head is
//! read in one pass with nothing to copy.
//!
//! [`parse`] gives `None` for anything else (another method, a tab,
//! obs-text, a bare LF, an empty line first, an unfinished head, ...):
//! `httparse` then reads the head and gives the verdict, so this path
//! decides nothing of what is accepted. What it reads is what `httparse`
//! reads of the same bytes; a unit test below holds it to that.

/// The most fields a head on the fast path may have.
pub(crate) const SIMPLE_FIELDS: usize = 16;

/// A head read by the fast path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimpleHead<'a> {
    pub(crate) method: &'static str,
    pub(crate) target: &'a str,
    pub(crate) http10: bool,
    /// Bytes of the head, the blank line included.
    pub(crate) len: usize,
    /// Each field's name and value (the value without the spaces around
    /// it); the first `count` are the head's.
    fields: [Field<'a>; SIMPLE_FIELDS],
    count: usize,
}

impl<'a> SimpleHead<'a> {
    /// The fields, in order: name and value.
    pub(crate) fn fields(&self) -> &[Field<'a>] {
        &self.fields[..self.count]
    }
}

/// Reads `buf`'s head if it is a simple one (see the module docs).
pub(crate) fn parse(buf: &[u8]) -> Option<SimpleHead<'_>> {
    let (method, mut at) = match buf.get(..5)? {
        b"GET /" => ("GET", 4),
        [b'H', b'E', b'A', b'D', b' '] => ("HEAD", 5),
        _ => return None,
    };
    let target_start = at;
    at += ascii_run(&buf[at..], b'!');
    let target = std::str::from_utf8(&buf[target_start..at]).ok()?;
    let version = buf.get(at..at + 11)?;
    let http10 = match version {
        b" HTTP/1.1\r\n" => false,
        b" HTTP/1.0\r\n" => true,
        _ => return None,
    };
    at += 11;
    let mut fields = [(&[][..], &[][..]); SIMPLE_FIELDS];
    let mut count = 0;
    loop {
        if buf.get(at..at + 2)? == b"\r\n" {
            return Some(SimpleHead {
                method,
                target,
                http10,
                len: at + 2,
                fields,
                count,
            });
        }
        let (field, next) = field_line(buf, at)?;
        *fields.get_mut(count)? = field;
        count += 1;
        at = next;
    }
}

/// A field's name and value.
type Field<'a> = (&'a [u8], &'a [u8]);

/// The field line at `start`: its name and trimmed value, and where the
/// next line starts.
fn field_line(buf: &[u8], start: usize) -> Option<(Field<'_>, usize)> {
    let name_len = buf[start..].iter().position(|&b| !TOKEN[usize::from(b)])?;
    let mut at = start + name_len;
    if name_len == 0 || buf[at] != b':' {
        return None;
    }
    let name = &buf[start..at];
    at += 1;
    while *buf.get(at)? == b' ' {
        at += 1;
    }
    let value_start = at;
    at += ascii_run(&buf[at..], b' ');
    if buf.get(at..at + 2)? != b"\r\n" {
        return None;
    }
    let value = buf[value_start..at].trim_ascii_end();
    Some(((name, value), at + 2))
}

/// The length of the run of bytes from `low` to 0x7e at the start of
/// `bytes` (`low` at most 0x80), eight bytes at a time: a byte below
/// `low` sets its top bit when `low` is subtracted, one from 0x7f up
/// when 1 is added or by itself; a borrow or a carry only runs upwards
/// from such a byte, so the lowest flagged byte is the first outside.
fn ascii_run(bytes: &[u8], low: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let below = ONES * u64::from(low);
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let outside = ((w.wrapping_sub(below) & !w) | w.wrapping_add(ONES) | w) & TOPS;
        if outside != 0 {
            return at + (outside.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = &bytes[at..];
    at + tail
        .iter()
        .position(|&b| !(low..=0x7e).contains(&b))
        .unwrap_or(tail.len())
}

/// A table of the bytes `member` (a `const fn(u8) -> bool`) accepts.
macro_rules! byte_table {
    ($member:ident) => {{
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = $member(b as u8);
            b += 1;
        }
        t
    }};
}

/// `tchar`: a field name's bytes.
const TOKEN: [bool; 256] = byte_table!(is_tchar);

const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    /// What httparse reads of `buf`, in the fast path's terms, when it
    /// finds a whole head.
    type Read = (String, String, bool, usize, Vec<(Vec<u8>, Vec<u8>)>);

    fn by_httparse(buf: &[u8]) -> Option<Read> {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 100];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => Some((
                req.method?.to_string(),
                req.path?.to_string(),
                req.version? == 0,
                len,
                req.headers
                    .iter()
                    .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                    .collect(),
            )),
            _ => None,
        }
    }

    fn by_fast_path(buf: &[u8]) -> Option<Read> {
        parse(buf).map(|h| {
            (
                h.method.to_string(),
                h.target.to_string(),
                h.http10,
                h.len,
                h.fields()
                    .iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect(),
            )
        })
    }

    const SAMPLE: &[u8] = b"GET /1k.bin?x=1 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\nX-Empty:\r\nX-Pad:  a b  \r\n\r\nnext";

    #[test]
    fn a_typical_head_is_read_as_httparse_reads_it() {
        let read = by_fast_path(SAMPLE).expect("the fast path takes it");
        assert_eq!(Some(read.clone()), by_httparse(SAMPLE));
        assert_eq!(read.4[4], (b"X-Empty".to_vec(), b"".to_vec()));
        assert_eq!(read.4[5], (b"X-Pad".to_vec(), b"a b".to_vec()));
        let head = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(by_fast_path(head), by_httparse(head));
        assert!(by_fast_path(head).is_some());
    }

    #[test]
    fn what_the_fast_path_reads_httparse_reads_alike() {
        // Every byte of the sample replaced by each value in turn, and
        // the sample cut at every length: whenever the fast path takes
        // the bytes, httparse reads the same from them.
        let mut taken = 0;
        for at in 0..SAMPLE.len() {
            for b in 0..=255u8 {
                let mut buf = SAMPLE.to_vec();
                buf[at] = b;
                if let Some(read) = by_fast_path(&buf) {
                    taken += 1;
                    assert_eq!(Some(read), by_httparse(&buf), "{:?}", buf);
                }
            }
            let cut = &SAMPLE[..at];
            if let Some(read) = by_fast_path(cut) {
                assert_eq!(Some(read), by_httparse(cut), "{cut:?}");
            }
        }
        assert!(taken > 10_000, "the fast path took {taken}");
    }

    #[test]
    fn anything_else_is_left_to_httparse() {
        for head in [
            &b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\n",
            b"GET / HTTP/1.1\r\nHost:\th\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\r",
            b"GET / HTTP/1.1\r\nHost: h",
            b"GET / HTTP/1.1",
            b"GET",
            b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert!(parse(head).is_none(), "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn the_tables_are_the_character_classes() {
        for b in 0..=255u8 {
            assert_eq!(TOKEN[usize::from(b)], crate::http::syntax::is_tchar(b));
        }
    }

    #[test]
    fn runs_are_measured_a_word_at_a_time_as_a_byte_at_a_time() {
        let naive = |bytes: &[u8], low: u8| {
            bytes
                .iter()
                .position(|&b| !(low..=0x7e).contains(&b))
                .unwrap_or(bytes.len())
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000 {
            let len = round % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Mostly printable, now and then anything.
                    match seed % 16 {
                        0 => (seed >> 8) as u8,
                        _ => 0x20 + (seed >> 8) as u8 % 0x5f,
                    }
                })
                .collect();
            for low in [b' ', b'!'] {
                assert_eq!(ascii_run(&bytes, low), naive(&bytes, low), "{bytes:?}");
            }
        }
        for b in 0..=255u8 {
            let mut bytes = [b'a'; 16];
            bytes[9] = b;
            let expected = if (0x20..=0x7e).contains(&b) { 16 } else { 9 };
            assert_eq!(ascii_run(&bytes, b' '), expected, "{b:#x}");
        }
    }

    #[test]
    fn too_many_fields_are_left_to_httparse() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..SIMPLE_FIELDS {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut more = head.clone();
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse(&head).map(|h| h.fields().len()), Some(SIMPLE_FIELDS));
        more.extend_from_slice(b"X-last: v\r\n\r\n");
        assert!(parse(&more).is_none());
    }
}

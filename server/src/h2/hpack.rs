//! HPACK (RFC 7541): the decoder of request header blocks, with its
//! dynamic table bounded by what the server allows, and the encoder of
//! response header lists. The decoder hands each field to a callback as
//! borrowed bytes, so the caller caps the decoded list (an HPACK bomb
//! costs its decoding, never its decoded size in memory). The encoder
//! keeps no dynamic table: a field is the static table's index when the
//! table has it whole, else a literal not indexed (with the static
//! table's name where it has the name), so the client's table size
//! never matters and no size update is ever owed.

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::hpack_tables::{static_name_index, HUFFMAN_CODES, STATIC_TABLE};

/// What makes a block undecodable (a COMPRESSION_ERROR, but for
/// [`TOO_LARGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// Decoding stopped: the block decodes to more than the limit given.
pub(crate) const TOO_LARGE: DecodeError = DecodeError("a header list too large to decode");

/// A dynamic table entry: a name and its value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The request side's decoder and its dynamic table.
#[derive(Debug)]
pub(crate) struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// The most the client may set the table to (our SETTINGS).
    allowed: usize,
}

impl Decoder {
    /// A decoder whose table may hold at most `allowed` bytes.
    pub(crate) fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: allowed,
            allowed,
        }
    }

    /// Decodes `block`, handing every field to `field` in order; stops
    /// with [`TOO_LARGE`] once the fields (RFC 7541 4.1's size: name,
    /// value and 32 each) pass `limit`, the table then out of step with
    /// the client's (the connection must end).
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        limit: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut pos = 0;
        let mut fields_seen = false;
        let mut size = 0usize;
        let mut count = |name: &[u8], value: &[u8]| {
            size += name.len() + value.len() + 32;
            match size > limit {
                true => Err(TOO_LARGE),
                false => Ok(()),
            }
        };
        while pos < block.len() {
            let first = block[pos];
            if first & 0x80 != 0 {
                let index = integer(block, &mut pos, 7)?;
                let (name, value) = self.entry(index)?;
                count(name, value)?;
                field(name, value);
                fields_seen = true;
            } else if first & 0xc0 == 0x40 {
                let (name, value) = self.literal(block, &mut pos, 6)?;
                count(&name, &value)?;
                field(&name, &value);
                self.insert(name, value);
                fields_seen = true;
            } else if first & 0xe0 == 0x20 {
                if fields_seen {
                    return Err(DecodeError("a table size update after a field"));
                }
                let size = integer(block, &mut pos, 5)?;
                if size > self.allowed {
                    return Err(DecodeError("a table size above the setting"));
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // Without indexing (0000) or never indexed (0001).
                let (name, value) = self.literal(block, &mut pos, 4)?;
                count(&name, &value)?;
                field(&name, &value);
                fields_seen = true;
            }
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        match index {
            0 => Err(DecodeError("index 0")),
            1..=61 => Ok(STATIC_TABLE[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(DecodeError("an index past the table")),
        }
    }

    fn literal(
        &self,
        block: &[u8],
        pos: &mut usize,
        prefix: u8,
    ) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let index = integer(block, pos, prefix)?;
        let name = match index {
            0 => string(block, pos)?,
            n => self.entry(n)?.0.to_vec(),
        };
        let value = string(block, pos)?;
        Ok((name, value))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            // RFC 7541 4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table
            .push_front((name.into_boxed_slice(), value.into_boxed_slice()));
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some((n, v)) = self.table.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= n.len() + v.len() + 32;
        }
    }
}

/// Reads an integer with an `prefix`-bit prefix (RFC 7541 5.1).
fn integer(block: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, DecodeError> {
    let max = (1usize << prefix) - 1;
    let first = *block.get(*pos).ok_or(DecodeError("a truncated integer"))?;
    *pos += 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*pos).ok_or(DecodeError("a truncated integer"))?;
        *pos += 1;
        if shift > 21 {
            return Err(DecodeError("an integer too large"));
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Reads a string literal, Huffman-coded or not (RFC 7541 5.2).
fn string(block: &[u8], pos: &mut usize) -> Result<Vec<u8>, DecodeError> {
    let huffman = block.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).filter(|&e| e <= block.len());
    let bytes = &block[*pos..end.ok_or(DecodeError("a truncated string"))?];
    *pos += len;
    match huffman {
        true => huffman_decode(bytes),
        false => Ok(bytes.to_vec()),
    }
}

/// The Huffman code as a canonical code (the RFC's is one: codes of one
/// length are consecutive, in symbol order): per length, its first code,
/// and where its symbols start in the symbols sorted by length.
struct Canonical {
    first_code: [u32; 31],
    count: [u32; 31],
    offset: [usize; 31],
    symbols: Vec<u16>,
}

fn canonical() -> &'static Canonical {
    static CANONICAL: OnceLock<Canonical> = OnceLock::new();
    CANONICAL.get_or_init(|| {
        let mut symbols: Vec<u16> = (0..257).collect();
        symbols.sort_by_key(|&s| (HUFFMAN_CODES[usize::from(s)].1, s));
        let mut c = Canonical {
            first_code: [0; 31],
            count: [0; 31],
            offset: [0; 31],
            symbols,
        };
        for (i, &s) in c.symbols.iter().enumerate() {
            let (code, len) = HUFFMAN_CODES[usize::from(s)];
            let len = usize::from(len);
            if c.count[len] == 0 {
                c.first_code[len] = code;
                c.offset[len] = i;
            }
            c.count[len] += 1;
        }
        c
    })
}

/// Decodes a Huffman-coded string (RFC 7541 5.2, Appendix B).
pub(crate) fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let c = canonical();
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            if len < 5 {
                continue;
            }
            let index = code.wrapping_sub(c.first_code[len]);
            if c.count[len] > 0 && index < c.count[len] {
                let symbol = c.symbols[c.offset[len] + index as usize];
                if symbol == 256 {
                    return Err(DecodeError("EOS in a string"));
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            } else if len >= 30 {
                return Err(DecodeError("not a Huffman code"));
            }
        }
    }
    // What is left must be padding: under 8 bits, all ones (EOS's prefix).
    if len > 7 || code != (1 << len) - 1 {
        return Err(DecodeError("bad Huffman padding"));
    }
    Ok(out)
}

/// Appends one field of a response's header block: the static table's
/// index when it holds the field whole (`:status` of the common codes),
/// else a literal not indexed, with the table's index for the name where
/// it has the name.
pub(crate) fn encode_field(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let name_index = static_name_index(name);
    if name_index == STATUS_INDEX {
        let whole = STATIC_TABLE[STATUS_INDEX - 1..STATUS_INDEX + 6]
            .iter()
            .position(|(_, v)| *v == value);
        if let Some(i) = whole {
            put_integer(block, 0x80, 7, STATUS_INDEX + i);
            return;
        }
    }
    // A literal without indexing: 0000, then the name's index (or 0 and
    // the name), then the value.
    put_integer(block, 0x00, 4, name_index);
    if name_index == 0 {
        put_string(block, name);
    }
    put_string(block, value);
}

/// `:status 200`'s index; the six codes after it follow it.
const STATUS_INDEX: usize = 8;

fn put_integer(block: &mut Vec<u8>, flags: u8, prefix: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        block.push(flags | value as u8);
        return;
    }
    block.push(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        block.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    block.push(value as u8);
}

fn put_string(block: &mut Vec<u8>, s: &[u8]) {
    put_integer(block, 0x00, 7, s.len());
    block.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut list = Vec::new();
        d.decode(block, usize::MAX, |n, v| {
            list.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .expect("decodes");
        list
    }

    #[test]
    fn the_rfc_requests_with_huffman_decode() {
        // RFC 7541 C.4: three requests on one connection.
        let mut d = Decoder::new(4096);
        let first = decode_all(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
        assert_eq!(first[3], (":authority".into(), "www.example.com".into()));
        let second = decode_all(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf"));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        let third = decode_all(
            &mut d,
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        );
        assert_eq!(third[2], (":path".into(), "/index.html".into()));
        assert_eq!(third[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(d.size, 164, "the table's size after C.4.3");
    }

    #[test]
    fn every_symbol_decodes_from_its_code() {
        for (symbol, &(code, len)) in HUFFMAN_CODES.iter().enumerate().take(256) {
            // The code, then ones to fill the byte (EOS's prefix).
            let bits = u64::from(code);
            let total = usize::from(len).div_ceil(8) * 8;
            let padded =
                bits << (total - usize::from(len)) | ((1 << (total - usize::from(len))) - 1);
            let bytes: Vec<u8> = (0..total / 8)
                .rev()
                .map(|i| (padded >> (8 * i)) as u8)
                .collect();
            assert_eq!(
                huffman_decode(&bytes),
                Ok(vec![symbol as u8]),
                "symbol {symbol}"
            );
        }
    }

    #[test]
    fn bad_blocks_are_errors() {
        let mut d = Decoder::new(4096);
        let mut ignore = |_: &[u8], _: &[u8]| {};
        for bad in [
            &[0x80][..],                           // index 0
            &[0xff, 0x00],                         // past the table
            &[0x3f, 0xe2, 0x1f],                   // a size update above 4096
            &[0x82, 0x20],                         // a size update after a field
            &[0x04, 0x85, 0xff],                   // a truncated string
            &[0x04, 0x81, 0x00],                   // Huffman padding of zeros
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // an integer too large
        ] {
            assert!(d.decode(bad, usize::MAX, &mut ignore).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_name_index_agrees_with_the_table() {
        for (i, (name, _)) in STATIC_TABLE.iter().enumerate() {
            let first = STATIC_TABLE
                .iter()
                .position(|(n, _)| n == name)
                .map(|p| p + 1);
            assert_eq!(Some(static_name_index(name)), first, "entry {}", i + 1);
        }
        assert_eq!(static_name_index(b"x-unknown"), 0);
        assert_eq!(
            STATIC_TABLE[STATUS_INDEX - 1],
            (&b":status"[..], &b"200"[..])
        );
        assert_eq!(STATIC_TABLE[STATUS_INDEX + 5].1, b"500");
    }

    #[test]
    fn an_encoded_list_decodes_back() {
        let fields: [(&[u8], &[u8]); 4] = [
            (b":status", b"200"),
            (b":status", b"206"),
            (b"content-type", b"text/html"),
            (b"x-custom", b"yes"),
        ];
        let mut block = Vec::new();
        for (n, v) in fields {
            encode_field(&mut block, n, v);
        }
        assert_eq!(block[0], 0x88, ":status 200 is static index 8");
        let mut d = Decoder::new(0);
        let decoded = decode_all(&mut d, &block);
        let expected: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        assert_eq!(decoded, expected);
    }
}

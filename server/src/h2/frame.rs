//! HTTP/2 frames on the wire (RFC 9113 section 4 and 6): the nine-byte
//! header, the frame types, flags, error codes and settings the server
//! uses, and writing a frame into an output buffer.

/// The connection preface a client starts with.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's length.
pub(crate) const HEADER_LEN: usize = 9;
/// The largest frame payload the server takes (the default it keeps).
pub(crate) const MAX_FRAME: usize = 16384;

pub(crate) const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
pub(crate) const PRIORITY: u8 = 2;
pub(crate) const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PUSH_PROMISE: u8 = 5;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 7;
pub(crate) const WINDOW_UPDATE: u8 = 8;
pub(crate) const CONTINUATION: u8 = 9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

/// RFC 9113 section 7's error codes.
pub(crate) const NO_ERROR: u32 = 0;
pub(crate) const PROTOCOL_ERROR: u32 = 1;
pub(crate) const INTERNAL_ERROR: u32 = 2;
pub(crate) const FLOW_CONTROL_ERROR: u32 = 3;
pub(crate) const STREAM_CLOSED: u32 = 5;
pub(crate) const FRAME_SIZE_ERROR: u32 = 6;
pub(crate) const REFUSED_STREAM: u32 = 7;
pub(crate) const COMPRESSION_ERROR: u32 = 9;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 11;

pub(crate) const SETTINGS_ENABLE_PUSH: u16 = 2;
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 4;
pub(crate) const SETTINGS_MAX_FRAME_SIZE: u16 = 5;
pub(crate) const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 6;

/// The largest flow-control window (2^31 - 1).
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl FrameHead {
    /// Reads a frame header from the first nine bytes of `bytes`, if
    /// there are nine.
    pub(crate) fn read(bytes: &[u8]) -> Option<FrameHead> {
        let h = bytes.get(..HEADER_LEN)?;
        Some(FrameHead {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: be32(&h[5..9]) & 0x7fff_ffff,
        })
    }
}

/// Appends a frame header for a payload of `len` bytes.
pub(crate) fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// Appends a whole frame.
pub(crate) fn put(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    put_head(out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
}

/// Appends a RST_STREAM frame.
pub(crate) fn put_reset(out: &mut Vec<u8>, stream: u32, code: u32) {
    put(out, RST_STREAM, 0, stream, &code.to_be_bytes());
}

/// Appends a WINDOW_UPDATE frame.
pub(crate) fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put(out, WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
}

/// Appends a GOAWAY frame naming the last stream the server will serve.
pub(crate) fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&last_stream.to_be_bytes());
    payload[4..].copy_from_slice(&code.to_be_bytes());
    put(out, GOAWAY, 0, 0, &payload);
}

/// A big-endian u32 from the first four bytes of `b` (callers check the
/// length).
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_head_reads_back() {
        let mut out = Vec::new();
        put(&mut out, HEADERS, END_HEADERS | END_STREAM, 7, b"abc");
        let head = FrameHead::read(&out).expect("nine bytes");
        assert_eq!(
            head,
            FrameHead {
                len: 3,
                kind: HEADERS,
                flags: END_HEADERS | END_STREAM,
                stream: 7
            }
        );
        assert_eq!(&out[HEADER_LEN..], b"abc");
        assert_eq!(FrameHead::read(&out[..8]), None);
    }

    #[test]
    fn the_reserved_bit_of_a_stream_id_is_ignored() {
        let bytes = [0, 0, 0, DATA, 0, 0x80, 0, 0, 1];
        assert_eq!(FrameHead::read(&bytes).map(|h| h.stream), Some(1));
    }
}

//! One frame: a little-endian `u32` body length, then a bincode 2 body.
//!
//! The codec is used only through [`encode_frame`] and [`decode_body`], so
//! it can be swapped without touching anything else.

use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

/// The largest body a frame may carry. Anything bigger is a protocol error.
pub const MAX_FRAME_LEN: usize = 4 << 20;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes `message` as a complete frame, length prefix included.
pub fn encode_frame<M: Serialize>(message: &M) -> Result<Vec<u8>, Error> {
    let mut frame = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(message, &mut frame, config())
        .map_err(|e| Error::Encode(e.to_string()))?;
    let body_len = frame.len() - HEADER_LEN;
    if body_len > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge(body_len));
    }
    frame[..HEADER_LEN].copy_from_slice(&(body_len as u32).to_le_bytes());
    Ok(frame)
}

/// Reads the body length from a frame's prefix, refusing oversized frames.
pub fn body_len(prefix: [u8; HEADER_LEN]) -> Result<usize, Error> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge(len));
    }
    Ok(len)
}

/// Decodes one frame body. Trailing bytes are an error.
pub fn decode_body<M: DeserializeOwned>(body: &[u8]) -> Result<M, Error> {
    let (message, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Error::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(Error::Decode(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(message)
}

//! The one error type of the protocol crate.

use std::io;

/// Everything that can go wrong on a channel. A caller that gets one of
/// these closes that channel only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on channel: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes is larger than the maximum of {max}", max = crate::frame::MAX_FRAME_LEN)]
    FrameTooLarge(usize),
    #[error("peer closed the channel in the middle of a frame ({0} bytes pending)")]
    Truncated(usize),
    #[error("malformed message: {0}")]
    Decode(String),
    #[error("message cannot be encoded: {0}")]
    Encode(String),
    #[error("ancillary data was truncated (MSG_CTRUNC)")]
    ControlTruncated,
    #[error("message says it carries a descriptor but none arrived")]
    MissingDescriptor,
    #[error("a descriptor arrived that no message claims")]
    UnexpectedDescriptor,
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("unexpected message during handshake: {0}")]
    Handshake(String),
}

impl Error {
    /// True when the error only means "try again later" on a non-blocking socket.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

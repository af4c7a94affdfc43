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

    /// True when the error only means that the peer has gone away (a
    /// broken pipe, a reset), which is as good as end-of-file: nobody is
    /// left to tell.
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Error::Io(e) if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_peer_is_told_from_other_errors() {
        for kind in [io::ErrorKind::BrokenPipe, io::ErrorKind::ConnectionReset] {
            assert!(Error::Io(io::Error::from(kind)).is_peer_gone(), "{kind:?}");
        }
        assert!(!Error::Io(io::Error::from(io::ErrorKind::WouldBlock)).is_peer_gone());
        assert!(!Error::Truncated(3).is_peer_gone());
    }
}

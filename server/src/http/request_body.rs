//! How a request's body is delimited (RFC 9112 section 6): by its
//! `Content-Length`, by the chunked transfer coding (decoded by
//! `chunked.rs`), or not at all.

/// How the request's body (if any) is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    #[default]
    None,
    Length(u64),
    Chunked,
}

impl Framing {
    /// The body's length when it is known from the head (0 for none or
    /// chunked): bytes to read and drop when the body is not wanted.
    pub(crate) fn known_length(self) -> u64 {
        match self {
            Framing::Length(n) => n,
            Framing::None | Framing::Chunked => 0,
        }
    }
}

//! HTTP/2 (RFC 9113, with HPACK, RFC 7541), sans I/O: the frames
//! (`frame.rs`), header compression (`hpack.rs`, its tables in
//! `hpack_tables.rs`), one connection's session of streams and windows
//! (`session.rs`), a request's header list as the HTTP/1.1 head the
//! server reads (`request_head.rs`), and a response head as a header
//! list (`response_head.rs`). Nothing here touches a socket or the rest
//! of the crate: the transport seam (`transport/h2_stream.rs`) carries
//! each stream to the server as a connection with one request.

pub(crate) mod frame;
pub(crate) mod hpack;
mod hpack_tables;
pub(crate) mod request_head;
pub(crate) mod response_head;
pub(crate) mod session;

#[cfg(test)]
mod session_tests;

pub(crate) use session::{Event, Read, Session};

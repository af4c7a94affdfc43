//! The protocol every amped process shares.
//!
//! The server talks to its children (the disk helpers and the CGI runner)
//! over Unix stream sockets. Each message travels in one frame: a
//! little-endian `u32` length, then the message encoded with bincode 2.
//! Open file descriptors ride along with the first bytes of their frame
//! as `SCM_RIGHTS` ancillary data.
//!
//! - [`messages`]: the message types and the version handshake.
//! - [`cgi`]: the messages between the server and the CGI runner.
//! - [`frame`]: encoding and decoding one frame (the codec lives here only).
//! - [`fdpass`]: `sendmsg`/`recvmsg` with descriptors attached.
//! - [`reader`]: an incremental, non-blocking frame reader for event loops.
//! - [`channel`]: a blocking channel for the child processes.
//! - [`child`]: setting up a child's end of the channel (parent-death
//!   signal, adopting the inherited socket).
//! - [`beneath`]: opening a path beneath a root, refusing escapes.
//! - [`error_log`]: one-write lines on the shared stderr (`error_log!`).
//!
//! Malformed input is always an [`Error`], never a panic.

pub mod beneath;
pub mod cgi;
pub mod channel;
pub mod child;
pub mod error;
pub mod error_log;
pub mod fdpass;
pub mod frame;
pub mod messages;
pub mod reader;
pub mod writer;

pub use cgi::*;
pub use channel::Channel;
pub use error::Error;
pub use frame::{decode_body, encode_frame, MAX_FRAME_LEN};
pub use messages::*;
pub use reader::{FrameReader, ReadStatus, Received};
pub use writer::FrameWriter;

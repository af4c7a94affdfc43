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
//! - [`writer`]: a non-blocking frame writer for the server's loop.
//! - [`shared_buffer`]: memory shared with the helpers, that file windows
//!   are read into.
//! - [`channel`]: a blocking channel for the child processes.
//! - [`child_setup`]: a child's start-up (parent-death signal, adopting
//!   the inherited socket, the child's side of the handshake).
//! - [`deadlines`]: a min-heap of deadlines for an event loop.
//! - [`beneath`]: opening a path beneath a root, refusing escapes.
//! - [`calendar`]: days since the epoch to a calendar date.
//! - [`error_log`](mod@error_log): one-write lines on the shared stderr (`error_log!`,
//!   `warn_log!`, `info_log!`) with the time, the level and the process.
//! - [`log_file`]: the error log as a file on descriptor 2, reopened on
//!   SIGHUP.
//!
//! Malformed input is always an [`Error`], never a panic.

pub mod beneath;
pub mod calendar;
pub mod cgi;
pub mod channel;
pub mod child_setup;
pub mod deadlines;
pub mod error;
pub mod error_log;
pub mod fdpass;
pub mod frame;
pub mod log_file;
pub mod messages;
pub mod reader;
pub mod shared_buffer;
pub mod writer;

pub use cgi::*;
pub use channel::Channel;
pub use deadlines::Deadlines;
pub use error::Error;
pub use frame::{decode_body, encode_frame, MAX_FRAME_LEN};
pub use messages::*;
pub use reader::{FrameReader, ReadStatus, Received};
pub use shared_buffer::SharedBuffer;
pub use writer::FrameWriter;

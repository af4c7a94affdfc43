//! The send path: large file bodies go out window by window, and the
//! event loop never touches a page that may be on disk.
//!
//! Before a window is sent, its pages are checked ([`OpenFile`]): a
//! window found in memory goes out with `sendfile` at once; any other is
//! read by a helper process, which hands the bytes back, while the loop
//! serves every other connection. The next window is asked for while the
//! current one is written (read-ahead), so that a cold download keeps a
//! helper busy and the disk's queue full. Why bytes come back rather than
//! a warmed page cache: on FUSE with `direct_io` a helper's read leaves
//! nothing in the cache, and a later `sendfile` would go to the disk again
//! (`tests/bench/slowdisk/residency.md`).
//!
//! [`FileBody`] keeps one body's windows on the connection's output
//! queue; [`WindowSlots`] lends the slots of the memory shared with the
//! helpers that windows are read into; [`WindowBudget`] bounds the bytes
//! of every window read and not yet written, server-wide. These are
//! leaves: what plans windows with the helpers at hand and takes their
//! answers is `send_path.rs`, above the helpers' supervision.

mod file_body;
mod open_file;
mod sink;
mod slots;
mod window_budget;

pub(crate) use file_body::{Delivered, FileBody, FrontNeeds, WindowBytes};
pub(crate) use open_file::OpenFile;
pub(crate) use sink::{pread, set_nodelay, shrank, FdSink, Sink};
pub(crate) use slots::{Slot, WindowSlots, SLOT_COUNT};
pub(crate) use window_budget::{WindowBudget, WindowLease};

/// Bytes a helper reads for one window: four reads of a FUSE filesystem's
/// usual 128 KiB `max_read`, well inside one frame when a window comes
/// back in a reply; sized on the slow disk (docs/benchmarks.md).
pub(crate) const READ_WINDOW: u64 = 512 << 10;

/// The most bytes sent with `sendfile` after one residency check: pages
/// may be evicted between the check and the send, so a check does not
/// vouch for long.
pub(crate) const STRAIGHT_WINDOW: u64 = 1 << 20;

/// Windows read ahead of the one being written.
pub(crate) const READ_AHEAD: usize = 2;

/// Plans a file body's windows as the output queue needs them.
pub(crate) trait PlanWindows {
    /// Plans the front window if none is, and reads ahead.
    fn plan(&mut self, body: &mut FileBody);
}

/// For output that holds no file bodies (a script's): plans nothing.
pub(crate) struct MemoryOnly;

impl PlanWindows for MemoryOnly {
    fn plan(&mut self, _body: &mut FileBody) {}
}

/// For tests: every window is sent straight.
#[cfg(test)]
pub(crate) struct SendStraight;

#[cfg(test)]
impl PlanWindows for SendStraight {
    fn plan(&mut self, body: &mut FileBody) {
        body.push_straight(body.end());
    }
}

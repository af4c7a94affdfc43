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
//! queue; [`Planner`] plans them as the output needs them; [`SendPath`]
//! takes the helpers' answers and keeps the counters; [`WindowSlots`]
//! lends the slots of the memory shared with the helpers that windows
//! are read into; [`WindowBudget`] bounds the bytes of every window read
//! and not yet written, server-wide.

mod file_body;
mod open_file;
mod slots;
mod window_budget;

use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::ReadResult;

use crate::conn_id::ConnId;
use crate::event::Poller;
use crate::output::Output;
use crate::supervise::helper_pool::ReadDone;
use crate::supervise::Supervision;

pub use file_body::{Delivered, FileBody, FrontNeeds, WindowBytes};
pub use open_file::OpenFile;
pub use slots::{Slot, WindowSlots, SLOT_COUNT};
pub use window_budget::{WindowBudget, WindowLease};

/// Bytes a helper reads for one window: four reads of a FUSE filesystem's
/// usual 128 KiB `max_read`, well inside one frame when a window comes
/// back in a reply; sized on the slow disk (see the README's figures).
pub const READ_WINDOW: u64 = 512 << 10;

/// The most bytes sent with `sendfile` after one residency check: pages
/// may be evicted between the check and the send, so a check does not
/// vouch for long.
pub const STRAIGHT_WINDOW: u64 = 1 << 20;

/// Windows read ahead of the one being written.
pub const READ_AHEAD: usize = 2;

/// Plans a file body's windows as the output queue needs them.
pub trait PlanWindows {
    /// Plans the front window if none is, and reads ahead.
    fn plan(&mut self, body: &mut FileBody);
}

/// For output that holds no file bodies (a script's): plans nothing.
pub struct MemoryOnly;

impl PlanWindows for MemoryOnly {
    fn plan(&mut self, _body: &mut FileBody) {}
}

/// For tests: every window is sent straight.
#[cfg(test)]
pub struct SendStraight;

#[cfg(test)]
impl PlanWindows for SendStraight {
    fn plan(&mut self, body: &mut FileBody) {
        body.push_straight(body.end());
    }
}

/// Counters for the status page.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendStats {
    /// Windows found in memory and sent with `sendfile`.
    pub windows_straight: u64,
    /// Windows read by helpers.
    pub windows_by_helpers: u64,
    /// Bytes helpers read and handed back.
    pub bytes_by_helpers: u64,
    /// Bytes of windows read (or being read) and not yet written, now.
    pub window_bytes: u64,
    /// Connections waiting for room in the window budget, now.
    pub window_waits: usize,
}

/// The send path's state: its counters and how long a window may take.
#[derive(Debug)]
pub struct SendPath {
    stats: SendStats,
    /// How long a connection waits for a window before it is closed
    /// (`--helper-timeout`).
    read_timeout: Duration,
    /// `--window-memory`.
    budget: WindowBudget<ConnId>,
}

impl SendPath {
    pub fn new(read_timeout: Duration, window_memory: u64) -> SendPath {
        SendPath {
            stats: SendStats::default(),
            read_timeout,
            budget: WindowBudget::new(window_memory),
        }
    }

    pub fn stats(&self) -> SendStats {
        SendStats {
            window_bytes: self.budget.used(),
            window_waits: self.budget.waiting(),
            ..self.stats
        }
    }

    /// The connection whose turn it is to read its front window, now that
    /// the window budget has room for it.
    pub fn memory_turn(&self) -> Option<ConnId> {
        self.budget.turn()
    }

    /// `conn` no longer waits for room in the window budget.
    pub fn forget(&mut self, conn: ConnId) {
        self.budget.forget(conn);
    }

    /// A planner for connection `waiter`'s output this turn.
    pub fn planner<'a>(
        &'a mut self,
        waiter: ConnId,
        helpers: &'a mut Supervision,
        poller: &'a mut dyn Poller,
        now: Instant,
    ) -> Planner<'a> {
        Planner {
            deadline: now + self.read_timeout,
            stats: &mut self.stats,
            budget: &mut self.budget,
            helpers,
            poller,
            now,
            waiter,
        }
    }

    /// A helper's answer for a window of the body at the front of `out`.
    /// False when the body cannot be finished (the read failed, or the
    /// file shrank) and the connection must close.
    pub fn deliver(&mut self, out: &mut Output, done: ReadDone) -> bool {
        let data = match (done.result, done.slot) {
            (ReadResult::Bytes(data), _) => WindowBytes::Owned(data),
            (ReadResult::InSlot(len), Some(slot)) => WindowBytes::InSlot(slot, len as usize),
            (ReadResult::InSlot(_), None) => {
                error_log!("a helper answered a read in a slot it was not lent");
                return false;
            }
            (ReadResult::Failed(reason), _) => {
                error_log!("{reason}");
                return false;
            }
        };
        let Some(body) = out
            .front_file()
            .filter(|b| Rc::ptr_eq(b.file(), &done.file))
        else {
            // The body it was for is gone (an old answer).
            return true;
        };
        self.stats.bytes_by_helpers += data.len() as u64;
        match body.deliver(done.start, data) {
            Delivered::Filled | Delivered::Unexpected => true,
            Delivered::Short => {
                error_log!(
                    "/{} shrank while it was being sent; closing the connection",
                    body.file().path()
                );
                false
            }
        }
    }
}

/// Plans windows for one connection, with the helpers at hand.
pub struct Planner<'a> {
    stats: &'a mut SendStats,
    budget: &'a mut WindowBudget<ConnId>,
    helpers: &'a mut Supervision,
    poller: &'a mut dyn Poller,
    now: Instant,
    waiter: ConnId,
    /// When a read asked for now is due.
    deadline: Instant,
}

impl Planner<'_> {
    /// Asks a helper for the window after the planned ones, its bytes
    /// held under `lease`.
    fn read_next(&mut self, body: &mut FileBody, lease: WindowLease) {
        let (start, len) = next_read(body);
        body.push_reading(start + len, lease);
        self.stats.windows_by_helpers += 1;
        let (poller, now) = (&mut *self.poller, self.now);
        let len = len as u32;
        self.helpers.read(
            self.waiter,
            body.file(),
            start,
            len,
            self.deadline,
            poller,
            now,
        );
    }
}

impl PlanWindows for Planner<'_> {
    fn plan(&mut self, body: &mut FileBody) {
        if let FrontNeeds::Window(start) | FrontNeeds::Memory(start) = body.front_needs() {
            let len = (body.end() - start).min(STRAIGHT_WINDOW);
            match body.file().resident_prefix(start, len) {
                0 => {
                    let (_, len) = next_read(body);
                    match self.budget.take_front(self.waiter, len) {
                        Some(lease) => self.read_next(body, lease),
                        // Woken by the loop when its turn comes.
                        None => body.wait_for_memory(),
                    }
                }
                resident => {
                    self.budget.forget(self.waiter);
                    body.push_straight(start + resident);
                    self.stats.windows_straight += 1;
                }
            }
        }
        // Read ahead what is not in memory, while the client and the
        // helpers keep up and the budget has room to spare.
        while body.windows() < 1 + READ_AHEAD
            && !matches!(body.front_needs(), FrontNeeds::Memory(_))
            && body.planned_to() < body.end()
            && body.should_look_ahead()
            && body.client_keeps_up()
            && self.helpers.reads_keep_up()
        {
            let (start, len) = next_read(body);
            if body.file().resident_prefix(start, len) > 0 {
                // Sent straight when its turn comes (and checked again).
                body.looked_ahead();
                break;
            }
            let Some(lease) = self.budget.take_ahead(len) else {
                break;
            };
            self.read_next(body, lease);
        }
    }
}

/// Where the window after the planned ones starts, and how long a read of
/// it is.
fn next_read(body: &FileBody) -> (u64, u64) {
    let start = body.planned_to();
    (start, (body.end() - start).min(READ_WINDOW))
}

#[cfg(test)]
mod tests;

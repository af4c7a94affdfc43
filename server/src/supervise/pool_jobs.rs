//! The helper pool's jobs: a lookup or a window read waiting, sent or
//! finished, where each went and since when, and what each helper's
//! socket carries (the bookkeeping the pool's policy and its message
//! exchange work on).

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::{FileMeta, Outcome, ReadResult};

use crate::conn_id::ConnId;
use crate::send::{OpenFile, Slot};

/// A connection waiting for a lookup or a read.
pub(crate) type Waiter = ConnId;

/// A finished job.
#[derive(Debug)]
pub(crate) enum Completion {
    Lookup(LookupDone),
    Read(ReadDone),
}

/// A finished lookup and everyone who waited for it.
#[derive(Debug)]
pub(crate) struct LookupDone {
    pub(crate) key: String,
    pub(crate) outcome: Outcome,
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) waiters: Vec<Waiter>,
}

/// A finished window read.
#[derive(Debug)]
pub(crate) struct ReadDone {
    pub(crate) waiter: Waiter,
    pub(crate) file: Rc<OpenFile>,
    /// Where the window starts in the file.
    pub(crate) start: u64,
    pub(crate) result: ReadResult,
    /// The slot of the shared buffer the read was lent, if any.
    pub(crate) slot: Option<Slot>,
}

/// When a job was queued and where it went.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dispatch {
    pub(super) queued_at: Instant,
    pub(super) helper: Option<usize>,
    /// When it was sent to `helper`.
    pub(super) sent_at: Option<Instant>,
    /// Helpers it left silent past the answer timeout.
    pub(super) stuck: u32,
}

impl Dispatch {
    pub(super) fn queued(now: Instant) -> Dispatch {
        Dispatch {
            queued_at: now,
            helper: None,
            sent_at: None,
            stuck: 0,
        }
    }

    /// True when it was sent and not answered within `timeout`.
    pub(super) fn overdue(&self, timeout: Duration, now: Instant) -> bool {
        self.sent_at.is_some_and(|t| t + timeout <= now)
    }

    pub(super) fn unsent(&mut self) {
        self.helper = None;
        self.sent_at = None;
    }
}

#[derive(Debug)]
pub(super) struct PendingLookup {
    pub(super) id: u64,
    pub(super) known: Option<FileMeta>,
    pub(super) dispatch: Dispatch,
    pub(super) waiters: Vec<Waiter>,
}

#[derive(Debug)]
pub(super) struct PendingRead {
    pub(super) waiter: Waiter,
    pub(super) file: Rc<OpenFile>,
    pub(super) start: u64,
    pub(super) len: u32,
    /// Lent for the read's whole life (re-sends included).
    pub(super) slot: Option<Slot>,
    pub(super) dispatch: Dispatch,
}

/// What a helper's socket carries now.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Load {
    /// Jobs sent and not answered.
    pub(super) in_flight: usize,
    /// One of them is a window read.
    pub(super) reading: bool,
    /// Since when it has had nothing to do.
    pub(super) idle_since: Option<Instant>,
}

/// Figures for the status page.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PoolStats {
    /// Jobs waiting for a helper now.
    pub(crate) queued: usize,
    /// The longest any job has waited for a helper.
    pub(crate) longest_wait: Duration,
    /// Helpers running (started or ready).
    pub(crate) running: usize,
    /// Shared slots held until the helpers given up on are reaped.
    pub(crate) slots_quarantined: usize,
}

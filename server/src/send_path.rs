//! The send path's glue, above the helpers' supervision: [`Planner`]
//! plans a file body's windows as the output queue needs them (a
//! residency check, then `sendfile` or a helper's read, within the window
//! budget), and [`SendPath`] takes the helpers' answers and keeps the
//! counters. The windows themselves, the slots and the budget are the
//! leaves in `send/`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::ReadResult;

use crate::conn_id::ConnId;
use crate::event::Poller;
use crate::output::Output;
use crate::send::{
    Delivered, FileBody, FrontNeeds, PlanWindows, WindowBudget, WindowBytes, WindowLease,
    READ_AHEAD, READ_WINDOW, STRAIGHT_WINDOW,
};
use crate::supervise::pool_jobs::ReadDone;
use crate::supervise::Supervision;

/// Counters for the status page.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SendStats {
    /// Windows found in memory and sent with `sendfile`.
    pub(crate) windows_straight: u64,
    /// Windows read by helpers.
    pub(crate) windows_by_helpers: u64,
    /// Bytes helpers read and handed back.
    pub(crate) bytes_by_helpers: u64,
    /// Bytes of windows read (or being read) and not yet written, now.
    pub(crate) window_bytes: u64,
    /// Connections waiting for room in the window budget, now.
    pub(crate) window_waits: usize,
}

/// The send path's state: its counters and how long a window may take.
#[derive(Debug)]
pub(crate) struct SendPath {
    stats: SendStats,
    /// How long a connection waits for a window before it is closed
    /// (`--helper-timeout`).
    read_timeout: Duration,
    /// `--window-memory`.
    budget: WindowBudget<ConnId>,
}

impl SendPath {
    pub(crate) fn new(read_timeout: Duration, window_memory: u64) -> SendPath {
        SendPath {
            stats: SendStats::default(),
            read_timeout,
            budget: WindowBudget::new(window_memory),
        }
    }

    pub(crate) fn stats(&self) -> SendStats {
        SendStats {
            window_bytes: self.budget.used(),
            window_waits: self.budget.waiting(),
            ..self.stats
        }
    }

    /// The connection whose turn it is to read its front window, now that
    /// the window budget has room for it.
    pub(crate) fn memory_turn(&self) -> Option<ConnId> {
        self.budget.turn()
    }

    /// `conn` no longer waits for room in the window budget.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.budget.forget(conn);
    }

    /// A planner for connection `waiter`'s output this turn.
    pub(crate) fn planner<'a>(
        &'a mut self,
        waiter: ConnId,
        supervision: &'a mut Supervision,
        poller: &'a mut dyn Poller,
        now: Instant,
    ) -> Planner<'a> {
        Planner {
            deadline: now + self.read_timeout,
            stats: &mut self.stats,
            budget: &mut self.budget,
            supervision,
            poller,
            now,
            waiter,
        }
    }

    /// A helper's answer for a window of the body at the front of `out`.
    /// False when the body cannot be finished (the read failed, or the
    /// file shrank) and the connection must close.
    pub(crate) fn deliver(&mut self, out: &mut Output, done: ReadDone) -> bool {
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
pub(crate) struct Planner<'a> {
    stats: &'a mut SendStats,
    budget: &'a mut WindowBudget<ConnId>,
    supervision: &'a mut Supervision,
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
        self.supervision.read(
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
        let needs = body.front_needs();
        if let FrontNeeds::Window(start) | FrontNeeds::Memory(start) = needs {
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
                    if matches!(needs, FrontNeeds::Memory(_)) {
                        // Found in memory while it waited: no read now.
                        self.budget.forget(self.waiter);
                    }
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
            && self.supervision.reads_keep_up()
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

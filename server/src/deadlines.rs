//! Deadlines for every connection in one min-heap, checked once per turn
//! of the loop.
//!
//! Each connection keeps its current deadline and has at most one entry
//! in the heap. When an entry comes due, the owner's current deadline is
//! compared: if it moved later, the entry is pushed again at the new time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::conn_table::ConnId;

/// A timer entry: when, and for which connection.
pub(crate) type TimerEntry = (Instant, ConnId);

/// The heap of deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Instant, conn: ConnId) {
        self.heap.push(Reverse((at, conn)));
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Time until the earliest entry (zero if overdue).
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_due_in_order() {
        let mut table = crate::conn_table::ConnTable::default();
        let (a, b, c) = (table.reserve(), table.reserve(), table.reserve());
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(t0 + Duration::from_secs(3), a);
        timers.push(t0 + Duration::from_secs(1), b);
        timers.push(t0 + Duration::from_secs(2), c);
        assert_eq!(timers.next_timeout(t0), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(timers.pop_due(now).map(|e| e.1), Some(b));
        assert_eq!(timers.pop_due(now).map(|e| e.1), Some(c));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.next_timeout(now), Some(Duration::from_secs(1)));
    }
}

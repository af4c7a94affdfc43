//! Deadlines in one min-heap, checked once per turn of the loop: what
//! the connection table keeps its connections' deadlines in.
//!
//! Entries are never removed early. The table keeps each connection's
//! current deadline and at most one entry in the heap; when an entry comes
//! due, the current deadline is compared, and if it moved later the entry
//! is pushed again at the new time. Generic over what an entry names, so
//! that it can serve any owner (the cgi-runner keeps the same kind of
//! heap for its scripts).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The heap of deadlines, each for a `T`.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, T)>>,
}

impl<T: Ord> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord> Timers<T> {
    pub(crate) fn push(&mut self, at: Instant, what: T) {
        self.heap.push(Reverse((at, what)));
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
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

//! Deadlines in one min-heap, checked once per turn of an event loop: the
//! one timer structure of the processes that run a loop (the CGI runner's
//! script time limits and grace periods; the server's connection
//! deadlines can use it too).
//!
//! Entries are never cancelled: when one comes due, its owner checks that
//! what it names still needs it (by a key that tells a reused slot or pid
//! from the old one), and pushes it again if the deadline moved.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Pending deadlines, earliest first; each carries what it is for (`T`).
/// Entries due at the same instant come out in the order of `T`.
#[derive(Debug)]
pub struct Deadlines<T: Ord> {
    heap: BinaryHeap<Reverse<(Instant, T)>>,
}

impl<T: Ord> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord> Deadlines<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deadline.
    pub fn push(&mut self, at: Instant, item: T) {
        self.heap.push(Reverse((at, item)));
    }

    /// Takes out the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// Time until the earliest deadline (zero if overdue), or `None` when
    /// there is none.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// How many deadlines are pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no deadline is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_out_in_order() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new();
        assert_eq!(deadlines.next_timeout(t0), None);
        deadlines.push(t0 + Duration::from_secs(3), 'c');
        deadlines.push(t0 + Duration::from_secs(1), 'a');
        deadlines.push(t0 + Duration::from_secs(2), 'b');
        assert_eq!(deadlines.len(), 3);
        assert_eq!(deadlines.next_timeout(t0), Some(Duration::from_secs(1)));
        assert_eq!(deadlines.pop_due(t0), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(
            deadlines.pop_due(now),
            Some((t0 + Duration::from_secs(1), 'a'))
        );
        assert_eq!(deadlines.pop_due(now).map(|e| e.1), Some('b'));
        assert_eq!(deadlines.pop_due(now), None);
        assert_eq!(deadlines.next_timeout(now), Some(Duration::from_secs(1)));
        assert_eq!(
            deadlines.next_timeout(t0 + Duration::from_secs(9)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            deadlines.pop_due(t0 + Duration::from_secs(9)).map(|e| e.1),
            Some('c')
        );
        assert!(deadlines.is_empty());
    }

    #[test]
    fn ties_come_out_in_key_order() {
        let at = Instant::now();
        let mut deadlines = Deadlines::new();
        for key in [3, 1, 2] {
            deadlines.push(at, key);
        }
        let order: Vec<_> = std::iter::from_fn(|| deadlines.pop_due(at).map(|e| e.1)).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}

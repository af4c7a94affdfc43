//! The runner's deadlines, in one min-heap checked each turn of the loop.
//!
//! Timers are never cancelled: when one fires, the loop checks that the
//! script it names (by pid and serial number, so a reused pid is never
//! mistaken for an old script) still needs it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The script's time limit: kill its process group.
    Timeout,
    /// The grace period after the script's exit is over: kill what is left
    /// of its process group.
    Grace,
    /// Stop waiting for end-of-file on the script's stderr.
    Forget,
}

/// Which script a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub pid: i32,
    pub serial: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    key: Key,
    kind: Kind,
}

/// Pending deadlines, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deadline.
    pub fn add(&mut self, at: Instant, key: Key, kind: Kind) {
        self.heap.push(Reverse(Entry { at, key, kind }));
    }

    /// Takes out the earliest deadline that is due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Key, Kind)> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.at <= now => {
                self.heap.pop().map(|Reverse(e)| (e.key, e.kind))
            }
            _ => None,
        }
    }

    /// How long `poll` may sleep: milliseconds until the earliest deadline
    /// (rounded up, so the deadline has passed on waking), or -1 for none.
    pub fn poll_timeout(&self, now: Instant) -> libc::c_int {
        let Some(Reverse(entry)) = self.heap.peek() else {
            return -1;
        };
        let left = entry.at.saturating_duration_since(now);
        let ms = left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0);
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
    }
}

/// `now + ms` milliseconds, or `None` when that is beyond what an
/// [`Instant`] can hold (which then means "never").
pub fn after(now: Instant, ms: u64) -> Option<Instant> {
    now.checked_add(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_out_in_order() {
        let now = Instant::now();
        let key = |pid| Key { pid, serial: 1 };
        let mut timers = Timers::new();
        assert_eq!(timers.poll_timeout(now), -1);
        timers.add(now + Duration::from_millis(30), key(3), Kind::Grace);
        timers.add(now + Duration::from_millis(10), key(1), Kind::Timeout);
        timers.add(now + Duration::from_millis(20), key(2), Kind::Forget);
        assert_eq!(timers.poll_timeout(now), 10);
        assert_eq!(timers.pop_due(now), None);
        let later = now + Duration::from_millis(25);
        assert_eq!(timers.pop_due(later), Some((key(1), Kind::Timeout)));
        assert_eq!(timers.pop_due(later), Some((key(2), Kind::Forget)));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.poll_timeout(later), 5);
        assert_eq!(timers.poll_timeout(now + Duration::from_secs(1)), 0);
    }

    #[test]
    fn partial_milliseconds_round_up() {
        let now = Instant::now();
        let mut timers = Timers::new();
        timers.add(
            now + Duration::from_micros(1500),
            Key { pid: 1, serial: 1 },
            Kind::Grace,
        );
        assert_eq!(timers.poll_timeout(now), 2);
    }

    #[test]
    fn a_huge_timeout_does_not_panic() {
        let now = Instant::now();
        if let Some(at) = after(now, u64::MAX) {
            let mut timers = Timers::new();
            timers.add(at, Key { pid: 1, serial: 1 }, Kind::Timeout);
            assert_eq!(timers.poll_timeout(now), libc::c_int::MAX);
        }
        assert!(after(now, 500).is_some());
    }
}

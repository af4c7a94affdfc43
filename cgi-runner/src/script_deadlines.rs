//! What the runner's deadlines are for, kept in one
//! [`Deadlines`](protocol::Deadlines) heap checked each turn of the loop.
//!
//! Deadlines are never cancelled: when one fires, the loop checks that the
//! script it names (by pid and serial number, so a reused pid is never
//! mistaken for an old script) still needs it.

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

/// Which script a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub pid: i32,
    pub serial: u64,
}

/// The runner's deadlines: which script, and what for.
pub type ScriptDeadlines = protocol::Deadlines<(Key, Kind)>;

/// How long `poll` may sleep before `next` (the time until the earliest
/// deadline, if any): in milliseconds, rounded up so the deadline has
/// passed on waking, or -1 for no deadline.
pub fn poll_timeout(next: Option<Duration>) -> libc::c_int {
    let Some(left) = next else {
        return -1;
    };
    let ms = left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
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
        let mut deadlines = ScriptDeadlines::new();
        let timeout = |d: &ScriptDeadlines, at| poll_timeout(d.next_timeout(at));
        let due = |d: &mut ScriptDeadlines, at| d.pop_due(at).map(|(_, entry)| entry);
        assert_eq!(timeout(&deadlines, now), -1);
        deadlines.push(now + Duration::from_millis(30), (key(3), Kind::Grace));
        deadlines.push(now + Duration::from_millis(10), (key(1), Kind::Timeout));
        deadlines.push(now + Duration::from_millis(20), (key(2), Kind::Forget));
        assert_eq!(timeout(&deadlines, now), 10);
        assert_eq!(due(&mut deadlines, now), None);
        let later = now + Duration::from_millis(25);
        assert_eq!(due(&mut deadlines, later), Some((key(1), Kind::Timeout)));
        assert_eq!(due(&mut deadlines, later), Some((key(2), Kind::Forget)));
        assert_eq!(due(&mut deadlines, later), None);
        assert_eq!(timeout(&deadlines, later), 5);
        assert_eq!(timeout(&deadlines, now + Duration::from_secs(1)), 0);
    }

    #[test]
    fn partial_milliseconds_round_up() {
        assert_eq!(poll_timeout(Some(Duration::from_micros(1500))), 2);
        assert_eq!(poll_timeout(Some(Duration::ZERO)), 0);
        assert_eq!(poll_timeout(None), -1);
    }

    #[test]
    fn a_huge_timeout_does_not_panic() {
        let now = Instant::now();
        if let Some(at) = after(now, u64::MAX) {
            let mut deadlines = ScriptDeadlines::new();
            deadlines.push(at, (Key { pid: 1, serial: 1 }, Kind::Timeout));
            assert_eq!(poll_timeout(deadlines.next_timeout(now)), libc::c_int::MAX);
        }
        assert!(after(now, 500).is_some());
    }
}

//! Which helper takes which job: the pool's assignment policy, as pure
//! functions of what each helper is doing now (as `backoff.rs` is for
//! restarts), so that each rule can be tested on its own:
//!
//! - a lookup goes to the least busy ready helper that is not reading a
//!   window, so it never waits behind a slow read;
//! - a window read goes only to an idle ready helper, and never to the
//!   last one not reading (with more than one helper), so a lookup always
//!   has somewhere to go;
//! - while reads wait, one stopped on-demand helper is started at a time
//!   (a start forks and execs, and holds the loop meanwhile);
//! - an on-demand helper idle for long enough is let go.

use std::time::{Duration, Instant};

/// What the policy needs to know of one helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HelperView {
    /// Handshake done; takes jobs.
    pub(crate) ready: bool,
    /// Spawned, its handshake not yet answered.
    pub(crate) starting: bool,
    /// Not running and not due to be restarted (an on-demand helper let
    /// go, or never started).
    pub(crate) stopped: bool,
    /// Started on demand (beyond `--helpers`), so it may be let go.
    pub(crate) on_demand: bool,
    /// Jobs sent to it and not answered.
    pub(crate) in_flight: usize,
    /// One of them is a window read.
    pub(crate) reading: bool,
    /// Since when it has had nothing to do.
    pub(crate) idle_since: Option<Instant>,
}

/// The helper a lookup goes to: ready, not reading, least busy.
pub(crate) fn for_lookup(helpers: &[HelperView]) -> Option<usize> {
    (0..helpers.len())
        .filter(|&i| helpers[i].ready && !helpers[i].reading)
        .min_by_key(|&i| helpers[i].in_flight)
}

/// The helper a window read goes to: the first idle ready one, unless
/// reads would then take the last ready helper not reading. A pool of one
/// helper lets it read.
pub(crate) fn for_read(helpers: &[HelperView]) -> Option<usize> {
    let ready = helpers.iter().filter(|h| h.ready).count();
    let reading = helpers.iter().filter(|h| h.ready && h.reading).count();
    let room = if helpers.len() == 1 {
        1
    } else {
        ready.saturating_sub(1)
    };
    if reading >= room {
        return None;
    }
    helpers.iter().position(|h| h.ready && h.in_flight == 0)
}

/// The helper to start now: while reads wait and none is starting, the
/// first stopped on-demand one.
pub(crate) fn to_start(helpers: &[HelperView], reads_waiting: bool) -> Option<usize> {
    if !reads_waiting || helpers.iter().any(|h| h.starting) {
        return None;
    }
    helpers.iter().position(|h| h.on_demand && h.stopped)
}

/// On-demand helpers with nothing to do, and since when.
pub(crate) fn retirable(helpers: &[HelperView]) -> impl Iterator<Item = (usize, Instant)> + '_ {
    helpers.iter().enumerate().filter_map(|(i, h)| {
        let idle = h.on_demand && h.ready && h.in_flight == 0;
        h.idle_since.filter(|_| idle).map(|since| (i, since))
    })
}

/// The on-demand helpers idle for `idle` or longer at `now`.
pub(crate) fn due_to_retire(helpers: &[HelperView], idle: Duration, now: Instant) -> Vec<usize> {
    retirable(helpers)
        .filter(|&(_, since)| since + idle <= now)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(in_flight: usize, reading: bool) -> HelperView {
        HelperView {
            ready: true,
            in_flight,
            reading,
            ..HelperView::default()
        }
    }

    #[test]
    fn a_lookup_goes_to_the_least_busy_helper_not_reading() {
        let helpers = [ready(0, true), ready(3, false), ready(1, false)];
        assert_eq!(for_lookup(&helpers), Some(2));
        let all_reading = [ready(1, true), ready(1, true)];
        assert_eq!(for_lookup(&all_reading), None);
        let starting = [HelperView {
            starting: true,
            ..HelperView::default()
        }];
        assert_eq!(for_lookup(&starting), None, "not ready yet");
    }

    #[test]
    fn reads_leave_one_ready_helper_free_of_reads() {
        // Two ready, none reading: one may read.
        assert_eq!(for_read(&[ready(0, false), ready(0, false)]), Some(0));
        // One already reads: the other stays for lookups.
        assert_eq!(for_read(&[ready(1, true), ready(0, false)]), None);
        // Three ready, one reading: a second may read.
        let three = [ready(1, true), ready(2, false), ready(0, false)];
        assert_eq!(for_read(&three), Some(2), "the idle one");
        // Busy with lookups: no idle helper to read.
        assert_eq!(
            for_read(&[ready(1, false), ready(1, false), ready(2, false)]),
            None
        );
    }

    #[test]
    fn a_pool_of_one_helper_lets_it_read() {
        assert_eq!(for_read(&[ready(0, false)]), Some(0));
        assert_eq!(for_read(&[ready(1, true)]), None, "it already reads");
    }

    #[test]
    fn helpers_start_one_at_a_time_and_only_while_reads_wait() {
        let stopped = HelperView {
            stopped: true,
            on_demand: true,
            ..HelperView::default()
        };
        let starting = HelperView {
            starting: true,
            on_demand: true,
            ..HelperView::default()
        };
        let helpers = [ready(1, true), ready(0, false), stopped, stopped];
        assert_eq!(to_start(&helpers, true), Some(2));
        assert_eq!(to_start(&helpers, false), None, "no read waits");
        let one_starting = [ready(1, true), ready(0, false), starting, stopped];
        assert_eq!(to_start(&one_starting, true), None, "one at a time");
        let permanent_down = HelperView {
            stopped: true,
            ..HelperView::default()
        };
        assert_eq!(
            to_start(&[permanent_down], true),
            None,
            "restarted by back-off, not here"
        );
    }

    #[test]
    fn idle_on_demand_helpers_are_let_go() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(5);
        let on_demand_idle = HelperView {
            on_demand: true,
            idle_since: Some(t0),
            ..ready(0, false)
        };
        let permanent_idle = HelperView {
            idle_since: Some(t0),
            ..ready(0, false)
        };
        let on_demand_busy = HelperView {
            on_demand: true,
            idle_since: Some(t0),
            ..ready(1, false)
        };
        let helpers = [permanent_idle, on_demand_idle, on_demand_busy];
        assert_eq!(due_to_retire(&helpers, idle, t0 + idle), vec![1]);
        assert!(due_to_retire(&helpers, idle, t0 + idle / 2).is_empty());
        assert_eq!(retirable(&helpers).collect::<Vec<_>>(), vec![(1, t0)]);
    }
}

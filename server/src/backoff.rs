//! The restart back-off of a supervised child: a child that dies is
//! restarted at once, then, while it keeps dying young, after 100 ms
//! doubling up to 5 s; one that lived 10 s counts as healthy again. A pure
//! function of the deaths and how long each child lived, so the schedule
//! is proven here without processes or clocks.

use std::time::Duration;

/// A child that lived at least this long is healthy again: its next
/// restart is immediate.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The longest wait before restarting a child that keeps dying.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first delayed restart.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How many times in a row a child died young.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartBackoff {
    quick_deaths: u32,
}

impl RestartBackoff {
    /// Records a death of a child that lived `lived`, and returns how long
    /// to wait before restarting it.
    pub(crate) fn on_death(&mut self, lived: Duration) -> Duration {
        if lived >= HEALTHY_AFTER {
            self.quick_deaths = 0;
        }
        let delay = match self.quick_deaths {
            0 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(n - 1))
                .min(MAX_BACKOFF),
        };
        self.quick_deaths = self.quick_deaths.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn at_once_then_doubling_from_100_ms_capped_at_5_s() {
        let mut backoff = RestartBackoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.on_death(ms(1))).collect();
        assert_eq!(
            delays,
            [
                ms(0),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000),
                ms(5000)
            ]
        );
    }

    #[test]
    fn a_child_that_lived_10_s_is_restarted_at_once_again() {
        let mut backoff = RestartBackoff::default();
        for _ in 0..8 {
            backoff.on_death(ms(1));
        }
        assert_eq!(backoff.on_death(HEALTHY_AFTER), ms(0));
        assert_eq!(backoff.on_death(ms(1)), ms(100));
        // Just short of healthy does not reset.
        assert_eq!(backoff.on_death(HEALTHY_AFTER - ms(1)), ms(200));
    }

    #[test]
    fn endless_deaths_never_overflow() {
        let mut backoff = RestartBackoff {
            quick_deaths: u32::MAX - 1,
        };
        assert_eq!(backoff.on_death(ms(1)), MAX_BACKOFF);
        assert_eq!(backoff.on_death(ms(1)), MAX_BACKOFF);
    }
}

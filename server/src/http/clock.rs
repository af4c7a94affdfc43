//! The loop's notion of time: a monotonic `Instant` for timeouts, and the
//! wall-clock strings (`Date` header, access-log date) rebuilt once a
//! second rather than once a request.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Cached time, refreshed once per turn of the event loop.
#[derive(Debug)]
pub struct Clock {
    now: Instant,
    second: u64,
    http_date: String,
    log_date: String,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let mut clock = Clock {
            now: Instant::now(),
            second: u64::MAX,
            http_date: String::new(),
            log_date: String::new(),
        };
        clock.tick();
        clock
    }

    /// Reads the clocks again.
    pub fn tick(&mut self) {
        self.now = Instant::now();
        let wall = SystemTime::now();
        let second = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second {
            self.second = second;
            self.http_date = httpdate::fmt_http_date(wall);
            self.log_date = log_date(second);
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// `Fri, 27 Nov 2026 16:44:54 GMT`
    pub fn http_date(&self) -> &str {
        &self.http_date
    }

    /// `27/Nov/2026:16:44:54 +0000`
    pub fn log_date(&self) -> &str {
        &self.log_date
    }
}

/// Formats seconds since the epoch as a Common Log Format date in UTC.
pub fn log_date(epoch_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = protocol::calendar::civil_from_secs(i64::try_from(epoch_secs).unwrap_or(i64::MAX));
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

#[cfg(test)]
mod tests {
    use super::log_date;

    #[test]
    fn log_dates_are_common_log_format() {
        assert_eq!(log_date(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(log_date(1_795_797_894), "27/Nov/2026:16:44:54 +0000");
        assert_eq!(log_date(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }
}

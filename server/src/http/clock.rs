//! The loop's notion of time: a monotonic `Instant` for timeouts, and the
//! wall-clock strings (`Date` header, access-log date) rebuilt once a
//! second rather than once a request.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Cached time, refreshed once per turn of the event loop.
#[derive(Debug)]
pub(crate) struct Clock {
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
    pub(crate) fn new() -> Self {
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
    pub(crate) fn tick(&mut self) {
        self.now = Instant::now();
        let wall = SystemTime::now();
        let second = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second {
            self.second = second;
            self.http_date = http_date(i64::try_from(second).unwrap_or(i64::MAX));
            self.log_date = log_date(second);
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// `Fri, 27 Nov 2026 16:44:54 GMT`
    pub(crate) fn http_date(&self) -> &str {
        &self.http_date
    }

    /// `27/Nov/2026:16:44:54 +0000`
    pub(crate) fn log_date(&self) -> &str {
        &self.log_date
    }
}

/// The last second an HTTP date can name (9999-12-31T23:59:59Z): its
/// format has four digits for the year.
pub(crate) const LAST_HTTP_DATE_SECS: i64 = 253_402_300_799;

/// Seconds since the epoch as an HTTP date (IMF-fixdate, RFC 9110
/// 5.6.7), for any value a file's time can hold: a time before 1970 is
/// given as the epoch, one after 9999 as the last second of 9999 (tmpfs,
/// btrfs and FUSE keep such times; `httpdate` panics on them).
pub(crate) fn http_date(epoch_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_secs.clamp(0, LAST_HTTP_DATE_SECS);
    let t = protocol::calendar::civil_from_secs(secs);
    let weekday = DAYS[(secs / 86_400 % 7) as usize];
    let month = MONTHS[(t.month.clamp(1, 12) - 1) as usize];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

/// Formats seconds since the epoch as a Common Log Format date in UTC.
pub(crate) fn log_date(epoch_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = protocol::calendar::civil_from_secs(i64::try_from(epoch_secs).unwrap_or(i64::MAX));
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day,
        MONTHS[(t.month.clamp(1, 12) - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

#[cfg(test)]
mod tests {
    use super::{http_date, log_date, LAST_HTTP_DATE_SECS};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn http_dates_match_httpdate_where_it_can_format_them() {
        let mut secs = 0i64;
        while secs <= LAST_HTTP_DATE_SECS {
            let time = UNIX_EPOCH + Duration::from_secs(secs as u64);
            assert_eq!(http_date(secs), httpdate::fmt_http_date(time), "{secs}");
            secs += 86_400 * 37 + 3_607;
        }
        let last = UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE_SECS as u64);
        assert_eq!(
            http_date(LAST_HTTP_DATE_SECS),
            httpdate::fmt_http_date(last)
        );
    }

    #[test]
    fn http_dates_outside_1970_to_9999_are_clamped_not_a_panic() {
        assert_eq!(
            http_date(LAST_HTTP_DATE_SECS + 1),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(i64::MIN), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn log_dates_take_any_time() {
        let far = log_date(u64::MAX);
        assert!(far.ends_with(" +0000") && far.contains("/Dec/"), "{far}");
    }

    #[test]
    fn log_dates_are_common_log_format() {
        assert_eq!(log_date(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(log_date(1_795_797_894), "27/Nov/2026:16:44:54 +0000");
        assert_eq!(log_date(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }
}

//! The test hook `AMPED_TEST_HELPER_DELAY=SUBSTRING:MILLIS`.
//!
//! When the variable is set, the helper sleeps MILLIS milliseconds before
//! answering any lookup whose path contains SUBSTRING. Only the helper
//! reads it; the integration tests use it to hold one lookup back and show
//! that the server keeps serving every other connection meanwhile.

use std::time::Duration;

/// The name of the environment variable.
pub const ENV_VAR: &str = "AMPED_TEST_HELPER_DELAY";

/// A parsed `SUBSTRING:MILLIS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    substring: String,
    pause: Duration,
}

impl Delay {
    /// Reads the hook from the environment. A malformed value is reported
    /// (so a test does not silently run without its delay) and ignored.
    pub fn from_env() -> Option<Delay> {
        let value = std::env::var_os(ENV_VAR)?;
        let parsed = value.to_str().and_then(Delay::parse);
        if parsed.is_none() {
            protocol::error_log!(
                "ignoring malformed {ENV_VAR}={value:?} (expected SUBSTRING:MILLIS)"
            );
        }
        parsed
    }

    /// Parses `SUBSTRING:MILLIS`; the substring may itself contain colons.
    pub fn parse(value: &str) -> Option<Delay> {
        let (substring, millis) = value.rsplit_once(':')?;
        let millis: u64 = millis.trim().parse().ok()?;
        Some(Delay {
            substring: substring.to_string(),
            pause: Duration::from_millis(millis),
        })
    }

    /// Sleeps if `path` matches.
    pub fn apply(&self, path: &str) {
        if path.contains(&self.substring) {
            std::thread::sleep(self.pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_substring_and_millis() {
        let d = Delay::parse("slow/:250").expect("parses");
        assert_eq!(d.substring, "slow/");
        assert_eq!(d.pause, Duration::from_millis(250));
        let d = Delay::parse("a:b:10").expect("parses");
        assert_eq!(d.substring, "a:b");
        assert!(Delay::parse("nocolon").is_none());
        assert!(Delay::parse("x:abc").is_none());
    }
}

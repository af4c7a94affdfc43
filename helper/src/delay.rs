//! The test hooks that hold a lookup back:
//!
//! - `AMPED_TEST_HELPER_DELAY=SUBSTRING:MILLIS`: the helper sleeps MILLIS
//!   milliseconds before answering any lookup whose path contains
//!   SUBSTRING;
//! - `AMPED_TEST_HELPER_GATE=SUBSTRING:FILE`: the helper holds any lookup
//!   whose path contains SUBSTRING until FILE exists (at most
//!   [`GATE_LIMIT`]), so that a test decides when the answer may go.
//!
//! A SUBSTRING that starts with `read:` holds window reads instead of
//! lookups: `read:big` holds every read of a window of a file whose path
//! contains `big` (`AMPED_TEST_HELPER_GATE=read:big:FILE`), to show what
//! happens when the disk hangs mid-download.
//!
//! Only the helper reads them; the integration tests use them to hold one
//! lookup back and show that the server keeps serving every other
//! connection meanwhile. A gate is what a test uses when it must know the
//! lookup is still held while it checks something; a fixed delay races
//! with a slow machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name of the fixed-delay variable.
pub const ENV_VAR: &str = "AMPED_TEST_HELPER_DELAY";
/// The name of the gate variable.
pub const GATE_ENV_VAR: &str = "AMPED_TEST_HELPER_GATE";

/// Marks a rule for window reads rather than lookups.
const READ_PREFIX: &str = "read:";

/// A gate that never opens releases its lookup after this long, so that a
/// test that forgets to open it cannot leave a helper stuck for ever.
pub const GATE_LIMIT: Duration = Duration::from_secs(120);
/// How often a held lookup looks for its gate file.
const GATE_POLL: Duration = Duration::from_millis(5);

/// How a matching lookup is held.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    /// Sleep this long.
    For(Duration),
    /// Wait until this file exists.
    UntilExists(PathBuf),
}

/// One hold: lookups whose path contains `substring`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    substring: String,
    hold: Hold,
}

/// The holds set in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    rules: Vec<Rule>,
}

impl Delay {
    /// Reads the hooks from the environment; `None` if neither is set. A
    /// malformed value is reported (so a test does not silently run
    /// without its hold) and ignored.
    pub fn from_env() -> Option<Delay> {
        let mut rules = Vec::new();
        for (var, parse, form) in [
            (
                ENV_VAR,
                parse_delay as fn(&str) -> Option<Rule>,
                "SUBSTRING:MILLIS",
            ),
            (GATE_ENV_VAR, parse_gate, "SUBSTRING:FILE"),
        ] {
            let Some(value) = std::env::var_os(var) else {
                continue;
            };
            match value.to_str().and_then(parse) {
                Some(rule) => rules.push(rule),
                None => {
                    protocol::error_log!("ignoring malformed {var}={value:?} (expected {form})")
                }
            }
        }
        (!rules.is_empty()).then_some(Delay { rules })
    }

    /// Holds a lookup of `path` while a rule matching it says so.
    pub fn apply(&self, path: &str) {
        self.hold(|substring| !substring.starts_with(READ_PREFIX) && path.contains(substring));
    }

    /// Holds a window read of `path` while a `read:` rule matching it says
    /// so.
    pub fn apply_to_read(&self, path: &str) {
        self.hold(|substring| {
            substring
                .strip_prefix(READ_PREFIX)
                .is_some_and(|s| path.contains(s))
        });
    }

    fn hold(&self, matches: impl Fn(&str) -> bool) {
        for rule in self.rules.iter().filter(|r| matches(&r.substring)) {
            match &rule.hold {
                Hold::For(pause) => std::thread::sleep(*pause),
                Hold::UntilExists(gate) => wait_for(gate, GATE_LIMIT),
            }
        }
    }
}

/// Parses a `SUBSTRING:MILLIS` delay; the substring may itself contain
/// colons.
fn parse_delay(value: &str) -> Option<Rule> {
    let (substring, millis) = value.rsplit_once(':')?;
    let millis: u64 = millis.trim().parse().ok()?;
    Some(Rule {
        substring: substring.to_string(),
        hold: Hold::For(Duration::from_millis(millis)),
    })
}

/// Parses a `SUBSTRING:FILE` gate; the file name may itself contain
/// colons, the substring may not.
fn parse_gate(value: &str) -> Option<Rule> {
    let (prefix, value) = match value.strip_prefix(READ_PREFIX) {
        Some(rest) => (READ_PREFIX, rest),
        None => ("", value),
    };
    let (substring, file) = value.split_once(':')?;
    if file.is_empty() {
        return None;
    }
    Some(Rule {
        substring: format!("{prefix}{substring}"),
        hold: Hold::UntilExists(PathBuf::from(file)),
    })
}

/// Returns once `file` exists, or after `limit`.
fn wait_for(file: &Path, limit: Duration) {
    let start = Instant::now();
    while !file.exists() && start.elapsed() < limit {
        std::thread::sleep(GATE_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_substring_and_millis() {
        let d = parse_delay("slow/:250").expect("parses");
        assert_eq!(d.substring, "slow/");
        assert_eq!(d.hold, Hold::For(Duration::from_millis(250)));
        let d = parse_delay("a:b:10").expect("parses");
        assert_eq!(d.substring, "a:b");
        assert!(parse_delay("nocolon").is_none());
        assert!(parse_delay("x:abc").is_none());
    }

    #[test]
    fn parses_substring_and_gate_file() {
        let d = parse_gate("slow:/tmp/a:b").expect("parses");
        assert_eq!(d.substring, "slow");
        assert_eq!(d.hold, Hold::UntilExists("/tmp/a:b".into()));
        assert!(parse_gate("nocolon").is_none());
        let d = parse_gate("read:big:/tmp/g").expect("parses");
        assert_eq!(d.substring, "read:big");
        assert_eq!(d.hold, Hold::UntilExists("/tmp/g".into()));
        assert!(parse_gate("slow:").is_none());
    }

    #[test]
    fn a_gate_holds_until_its_file_exists() {
        let dir = std::env::temp_dir().join(format!("amped-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let gate = dir.join("open");
        let _ = std::fs::remove_file(&gate);
        let d = Delay {
            rules: vec![parse_gate(&format!("slow:{}", gate.display())).expect("parses")],
        };
        // A path that does not match is not held at all.
        d.apply("/fast.html");
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(&gate, b"").expect("open the gate");
            })
        };
        // Nor is a window read, without `read:`.
        d.apply_to_read("/slow.html");
        d.apply("/slow.html");
        // The hold ended because the file exists, not because of the limit.
        assert!(gate.exists(), "apply returned before the gate opened");
        opener.join().expect("the opener thread");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

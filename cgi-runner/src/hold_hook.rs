//! The test hook `AMPED_TEST_RUNNER_HOLD_AFTER_CHECK=FILE`.
//!
//! When the variable is set, the runner, after a script has passed its
//! checks and before it starts it, creates `FILE.reached` and waits (at
//! most [`LONGEST_HOLD`]) until FILE exists, then removes both: the window
//! in which a path could be changed under a checked script. Only the
//! runner reads it; the integration tests use it to change the script's
//! path in that window and show that the checked file still runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The name of the environment variable.
pub const ENV_VAR: &str = "AMPED_TEST_RUNNER_HOLD_AFTER_CHECK";

/// The longest the runner is held.
const LONGEST_HOLD: Duration = Duration::from_secs(30);

/// Holds the runner if the hook asks for it.
pub fn after_check() {
    let Some(file) = std::env::var_os(ENV_VAR).map(PathBuf::from) else {
        return;
    };
    let mut reached = file.clone().into_os_string();
    reached.push(".reached");
    let reached = PathBuf::from(reached);
    if std::fs::write(&reached, b"").is_err() {
        return;
    }
    let start = Instant::now();
    while !file.exists() && start.elapsed() < LONGEST_HOLD {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&reached);
}

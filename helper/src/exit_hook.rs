//! The test hook `AMPED_TEST_HELPER_EXIT_IF=FILE`.
//!
//! When the variable names a file that exists, a helper started by the
//! server exits at once (status 3), before its handshake. Only the helper
//! reads it; the integration tests create the file after the server is up
//! to make every restarted helper die at once, and check that the server
//! restarts them with back-off and answers requests with 503 meanwhile.

use std::path::Path;

/// The name of the environment variable.
pub const ENV_VAR: &str = "AMPED_TEST_HELPER_EXIT_IF";

/// The exit status of a helper stopped by the hook.
pub const EXIT_STATUS: u8 = 3;

/// True when the hook asks this helper to exit now.
pub fn triggered() -> bool {
    std::env::var_os(ENV_VAR).is_some_and(|file| Path::new(&file).exists())
}

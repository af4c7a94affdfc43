//! The test hook `AMPED_TEST_RUNNER_DIE_AFTER_SPAWN=FILE`.
//!
//! When the variable names a file that exists, the runner removes it and
//! exits (status [`EXIT_STATUS`]) right after starting a script, before it
//! tells the server: the window in which a dying runner leaves the server
//! not knowing whether the script ran. The file makes it happen once.
//! Only the runner reads it; the integration tests use it to show that the
//! run is not sent again (the script does not run twice).

use std::path::Path;

/// The name of the environment variable.
pub const ENV_VAR: &str = "AMPED_TEST_RUNNER_DIE_AFTER_SPAWN";

/// The exit status of a runner stopped by the hook.
pub const EXIT_STATUS: i32 = 4;

/// Exits the runner if the hook asks for it (once per file).
pub fn after_spawn() {
    let Some(file) = std::env::var_os(ENV_VAR) else {
        return;
    };
    if std::fs::remove_file(Path::new(&file)).is_ok() {
        std::process::exit(EXIT_STATUS);
    }
}

//! The server's long options as `server --help` lists them, for tests that
//! check a document (the example configuration file, the man page) names
//! every one, so that the document cannot drift from the code.

use crate::{run_with_deadline, server_bin, DEADLINE};

/// Options that act on one run only, and so have no configuration key.
pub const COMMAND_ONLY: [&str; 6] = [
    "--config",
    "--check-config",
    "--print-man-page",
    "--print-completions",
    "--help",
    "--version",
];

/// Every `--name` at the start of an option line of `server --help`.
pub fn server_long_options() -> Vec<String> {
    let output = run_with_deadline(&server_bin(), &["--help"], DEADLINE);
    assert!(output.status.success(), "--help: {}", output.stderr);
    let options: Vec<String> = output
        .stdout
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(option_named)
        .collect();
    assert!(
        options.len() >= 20,
        "server --help lists only {options:?}:\n{}",
        output.stdout
    );
    options
}

/// `--NAME` for text that starts with an option's name (after its `--`):
/// the letters, digits and dashes up to the first other character.
pub fn option_named(rest: &str) -> String {
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("--{name}")
}

/// The options that may be set in a configuration file.
pub fn configurable_options() -> Vec<String> {
    server_long_options()
        .into_iter()
        .filter(|o| !COMMAND_ONLY.contains(&o.as_str()))
        .collect()
}

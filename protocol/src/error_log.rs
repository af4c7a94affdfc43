//! The error log (the server's stderr, inherited by its helpers and the
//! runner, and shared with the scripts' forwarded lines): each message
//! goes out as one whole line in a single write, so lines from different
//! processes never splice into each other.
//!
//! Every line says when, how bad, and which process wrote it:
//! `2026-11-29T04:45:20.123Z error helper[4242]: MESSAGE` (RFC 3339 time
//! in UTC, a level of `error`, `warn` or `info`, the process's name and
//! pid). Each process names itself once, at the start of `main`, with
//! [`set_prefix`] (`"server"`, `"helper"`, `"cgi-runner"`); call sites say
//! only what happened, with [`error_log!`](crate::error_log!),
//! [`warn_log!`](crate::warn_log!) or [`info_log!`](crate::info_log!).
//! Where the log goes (stderr, or a file reopened on SIGHUP) is
//! [`log_file`](crate::log_file)'s business.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::calendar::rfc3339_millis;

/// This process's name in the log, set once.
static PREFIX: OnceLock<&'static str> = OnceLock::new();

/// How bad a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something the operator should change.
    Warn,
    /// Worth knowing, nothing wrong.
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// Names this process in the log. Only the first call counts: it returns
/// true, any later one false (and changes nothing).
pub fn set_prefix(name: &'static str) -> bool {
    PREFIX.set(name).is_ok()
}

/// Writes one line at `level`.
pub fn write_at(level: Level, args: fmt::Arguments<'_>) {
    let mut line = line_head(level);
    line.push_str(&args.to_string());
    line.push('\n');
    write_out(&line);
}

/// Writes one `error` line.
pub fn write_line(args: fmt::Arguments<'_>) {
    write_at(Level::Error, args);
}

/// The same as [`write_line`]: every line names its process's pid now.
/// Kept for the `error_log!(pid; ...)` call sites.
pub fn write_line_with_pid(args: fmt::Arguments<'_>) {
    write_line(args);
}

fn write_out(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The start of a line written now at `level` by this process, up to and
/// including the `: ` before the message (for a process that writes lines
/// of its own, like the runner forwarding a script's stderr).
pub fn line_head(level: Level) -> String {
    format_head(
        SystemTime::now(),
        level,
        PREFIX.get().copied(),
        std::process::id(),
    )
}

/// `TIME LEVEL NAME[PID]: `, or `TIME LEVEL [PID]: ` for a process that
/// has not named itself.
fn format_head(time: SystemTime, level: Level, prefix: Option<&str>, pid: u32) -> String {
    format!(
        "{} {} {}[{pid}]: ",
        rfc3339_millis(time),
        level.as_str(),
        prefix.unwrap_or("")
    )
}

/// `error_log!("cannot open {path}: {e}")`: like `eprintln!`, in one
/// write, as an `error` line of this process (see [`set_prefix`]).
/// `error_log!(pid; "...")` is the same (every line names the pid).
#[macro_export]
macro_rules! error_log {
    (pid; $($arg:tt)*) => {
        $crate::error_log::write_line_with_pid(format_args!($($arg)*))
    };
    ($($arg:tt)*) => {
        $crate::error_log::write_line(format_args!($($arg)*))
    };
}

/// `warn_log!("...")`: a `warn` line (see [`error_log!`](crate::error_log!)).
#[macro_export]
macro_rules! warn_log {
    ($($arg:tt)*) => {
        $crate::error_log::write_at($crate::error_log::Level::Warn, format_args!($($arg)*))
    };
}

/// `info_log!("...")`: an `info` line (see [`error_log!`](crate::error_log!)).
#[macro_export]
macro_rules! info_log {
    ($($arg:tt)*) => {
        $crate::error_log::write_at($crate::error_log::Level::Info, format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_say_when_how_bad_and_who() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_927_520_123);
        assert_eq!(
            format_head(t, Level::Error, Some("helper"), 42),
            "2026-11-29T04:45:20.123Z error helper[42]: "
        );
        assert_eq!(
            format_head(t, Level::Warn, None, 7),
            "2026-11-29T04:45:20.123Z warn [7]: "
        );
        assert_eq!(Level::Info.as_str(), "info");
    }

    #[test]
    fn the_prefix_is_set_once() {
        // The test binary names itself once; the second name is refused.
        assert!(set_prefix("first"));
        assert!(!set_prefix("second"));
        assert_eq!(PREFIX.get().copied(), Some("first"));
        assert!(line_head(Level::Info).contains(" info first["));
    }
}

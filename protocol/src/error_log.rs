//! The error log (the server's stderr, inherited by its helpers and the
//! runner, and shared with the scripts' forwarded lines): each message
//! goes out as one whole line in a single write, so lines from different
//! processes never splice into each other.
//!
//! Each process names itself once, at the start of `main`, with
//! [`set_prefix`] (`"helper"`, `"cgi-runner"`, `"amped"`); every line of
//! [`error_log!`](crate::error_log!) then starts with that name and `: `,
//! and call sites say only what happened. A process that has not named
//! itself writes its lines exactly as given.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

/// This process's name in the log, set once.
static PREFIX: OnceLock<&'static str> = OnceLock::new();

/// Names this process in the log. Only the first call counts: it returns
/// true, any later one false (and changes nothing).
pub fn set_prefix(name: &'static str) -> bool {
    PREFIX.set(name).is_ok()
}

/// Writes one line to the error log: `PREFIX: MESSAGE`.
pub fn write_line(args: fmt::Arguments<'_>) {
    write_out(format_line(PREFIX.get().copied(), None, args));
}

/// Writes one line that names this very process: `PREFIX PID: MESSAGE`,
/// for a line that must tell one of several processes of the same name
/// from the others (several helpers run at once).
pub fn write_line_with_pid(args: fmt::Arguments<'_>) {
    let pid = std::process::id();
    write_out(format_line(PREFIX.get().copied(), Some(pid), args));
}

fn write_out(line: String) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One log line, newline included: the prefix (with the pid, if given),
/// `: `, the message. Without a prefix, the message alone (with the pid:
/// `PID: MESSAGE`).
fn format_line(prefix: Option<&str>, pid: Option<u32>, args: fmt::Arguments<'_>) -> String {
    let mut line = String::new();
    match (prefix, pid) {
        (Some(prefix), Some(pid)) => line.push_str(&format!("{prefix} {pid}: ")),
        (Some(prefix), None) => line.push_str(&format!("{prefix}: ")),
        (None, Some(pid)) => line.push_str(&format!("{pid}: ")),
        (None, None) => {}
    }
    line.push_str(&args.to_string());
    line.push('\n');
    line
}

/// `error_log!("cannot open {path}: {e}")`: like `eprintln!`, in one
/// write, after the process's prefix (see [`set_prefix`]).
/// `error_log!(pid; "...")` puts the process id after the prefix.
#[macro_export]
macro_rules! error_log {
    (pid; $($arg:tt)*) => {
        $crate::error_log::write_line_with_pid(format_args!($($arg)*))
    };
    ($($arg:tt)*) => {
        $crate::error_log::write_line(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_prefix_once() {
        let line = |prefix, pid| format_line(prefix, pid, format_args!("bad {}", 1));
        assert_eq!(line(Some("helper"), None), "helper: bad 1\n");
        assert_eq!(line(Some("helper"), Some(42)), "helper 42: bad 1\n");
        assert_eq!(line(None, None), "bad 1\n");
        assert_eq!(line(None, Some(42)), "42: bad 1\n");
    }

    #[test]
    fn the_prefix_is_set_once() {
        // The test binary names itself once; the second name is refused.
        assert!(set_prefix("first"));
        assert!(!set_prefix("second"));
        assert_eq!(PREFIX.get().copied(), Some("first"));
    }
}

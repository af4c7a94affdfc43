//! The error log (the server's stderr, inherited by its helpers and the
//! runner, and shared with the scripts' forwarded lines): each message
//! goes out as one whole line in a single write, so lines from different
//! processes never splice into each other.

use std::io::Write;

/// Writes one line to the error log.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut line = args.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `error_log!("amped: ...", args)`: like `eprintln!`, in one write.
#[macro_export]
macro_rules! error_log {
    ($($arg:tt)*) => {
        $crate::error_log::write_line(format_args!($($arg)*))
    };
}

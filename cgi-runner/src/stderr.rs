//! A script's stderr, forwarded line by line to the runner's own stderr
//! (which the server makes its error log) as `cgi: /SCRIPT: LINE` after
//! the log's usual head (time, `error`, `cgi-runner[PID]`).
//!
//! The pipe is read without blocking whenever the loop finds it readable.
//! Lines longer than [`MAX_LINE`] bytes are cut into pieces of that size;
//! a last line without a newline is written at end-of-file. Bytes that are
//! not UTF-8 are replaced, control characters (but tab) are escaped, and a
//! trailing carriage return is dropped, so one script line is always one
//! log line.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use protocol::error_log::{self, Level};

/// The longest log line, in bytes of script output.
pub const MAX_LINE: usize = 4096;

/// At most this much is read from one script per turn of the loop, so a
/// chatty script cannot starve the others.
const READ_BUDGET: usize = 64 * 1024;

/// Cuts a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Adds `bytes`, calling `emit` with every line completed (without its
    /// newline).
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            // One byte past the room: a newline right after a full line
            // ends that line rather than making an empty one.
            let window = &bytes[..bytes.len().min(room + 1)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                self.partial.extend_from_slice(&bytes[..i]);
                emit(&self.partial);
                self.partial.clear();
                bytes = &bytes[i + 1..];
            } else if bytes.len() > room {
                self.partial.extend_from_slice(&bytes[..room]);
                emit(&self.partial);
                self.partial.clear();
                bytes = &bytes[room..];
            } else {
                self.partial.extend_from_slice(bytes);
                bytes = &[];
            }
        }
    }

    /// Emits what is left of an unfinished last line.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
    }
}

/// One log line: `prefix`, the cleaned-up text, a newline.
pub fn format_line(prefix: &str, line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = String::with_capacity(prefix.len() + line.len() + 1);
    out.push_str(prefix);
    for c in String::from_utf8_lossy(line).chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out.into_bytes()
}

/// [`format_line`] after the error log's head (time, level, this
/// process): one whole line of the error log.
pub fn log_line(prefix: &str, line: &[u8]) -> Vec<u8> {
    let mut out = error_log::line_head(Level::Error).into_bytes();
    out.extend_from_slice(&format_line(prefix, line));
    out
}

/// How a script is named in the log: its path with a leading `/` (as in
/// the URL), at most 256 characters, control characters escaped.
pub fn display_name(script: &str) -> String {
    let mut name = String::from("/");
    for c in script.chars().take(256) {
        if c.is_control() {
            name.extend(c.escape_default());
        } else {
            name.push(c);
        }
    }
    name
}

/// Whether the pipe is still open after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// More may come.
    Open,
    /// End-of-file (or an error): everything has been written out.
    Closed,
}

/// The read end of one script's stderr pipe.
#[derive(Debug)]
pub struct StderrLog {
    pipe: File,
    prefix: String,
    lines: LineSplitter,
}

impl StderrLog {
    /// Takes the pipe (made non-blocking) of the script shown as `name`
    /// (`/cgi-bin/x.cgi`).
    pub fn new(pipe: OwnedFd, name: &str) -> io::Result<StderrLog> {
        let flags = OFlag::from_bits_truncate(fcntl(pipe.as_fd(), FcntlArg::F_GETFL)?);
        fcntl(pipe.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(StderrLog {
            pipe: File::from(pipe),
            prefix: format!("cgi: {name}: "),
            lines: LineSplitter::default(),
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// Reads what is there (up to a budget) and writes the complete lines
    /// to `log`; at end-of-file also the unfinished last one. Errors
    /// writing the log are ignored: there is nowhere else to report them.
    pub fn read_available(&mut self, log: &mut dyn Write) -> Drain {
        let mut buf = [0u8; 8192];
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.finish(log);
                    return Drain::Closed;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    let prefix = &self.prefix;
                    self.lines.push(&buf[..n], &mut |line| {
                        let _ = log.write_all(&log_line(prefix, line));
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drain::Open,
                Err(_) => {
                    self.finish(log);
                    return Drain::Closed;
                }
            }
        }
        Drain::Open
    }

    /// Writes out an unfinished last line.
    pub fn finish(&mut self, log: &mut dyn Write) {
        let prefix = &self.prefix;
        self.lines.finish(&mut |line| {
            let _ = log.write_all(&log_line(prefix, line));
        });
        let _ = log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in chunks {
            splitter.push(chunk, &mut |line| lines.push(line.to_vec()));
        }
        splitter.finish(&mut |line| lines.push(line.to_vec()));
        lines
    }

    #[test]
    fn lines_are_reassembled_across_reads() {
        assert_eq!(
            split(&[b"one\ntw", b"o\n", b"\nthree"]),
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                b"".to_vec(),
                b"three".to_vec()
            ]
        );
        assert!(split(&[b""]).is_empty());
    }

    #[test]
    fn long_lines_are_cut() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&[&input[..100], &input[100..]]);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1].len(), MAX_LINE);
        assert_eq!(lines[2].len(), 10);
        assert_eq!(lines[3], b"next");
        // Exactly MAX_LINE then a newline: one line, no empty one after.
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(split(&[&exact]).len(), 1);
        assert_eq!(split(&[&exact[..MAX_LINE], b"\n"]).len(), 1);
        assert_eq!(
            split(&[&exact[..MAX_LINE], b"z\n"]),
            vec![exact[..MAX_LINE].to_vec(), b"z".to_vec()]
        );
    }

    #[test]
    fn lines_are_cleaned_up() {
        assert_eq!(format_line("p: ", b"hello\r"), b"p: hello\n");
        assert_eq!(format_line("p: ", b"a\tb"), b"p: a\tb\n");
        assert_eq!(
            format_line("p: ", b"bell\x07\x1b[31m"),
            b"p: bell\\u{7}\\u{1b}[31m\n"
        );
        assert_eq!(
            format_line("p: ", b"caf\xff"),
            "p: caf\u{fffd}\n".as_bytes()
        );
    }

    #[test]
    fn names_are_safe_to_log() {
        assert_eq!(display_name("cgi-bin/x.cgi"), "/cgi-bin/x.cgi");
        assert_eq!(display_name("a\nb"), "/a\\nb");
        assert_eq!(display_name(&"x".repeat(1000)).len(), 257);
    }

    #[test]
    fn a_pipe_is_forwarded_until_end_of_file() {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        let mut log = StderrLog::new(read, "/cgi-bin/x.cgi").expect("log");
        let mut out = Vec::new();
        let mut writer = File::from(write);
        writer.write_all(b"first\nsec").expect("write");
        // Each line after the log's head: `TIME error [PID]: `.
        let messages = |out: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(out)
                .lines()
                .map(|l| {
                    assert!(l.contains(" error "), "a head: {l}");
                    l.split_once("]: ").map_or(l, |(_, m)| m).to_owned()
                })
                .collect()
        };
        assert_eq!(log.read_available(&mut out), Drain::Open);
        assert_eq!(messages(&out), ["cgi: /cgi-bin/x.cgi: first"]);
        writer.write_all(b"ond").expect("write");
        drop(writer);
        assert_eq!(log.read_available(&mut out), Drain::Closed);
        assert_eq!(
            messages(&out),
            ["cgi: /cgi-bin/x.cgi: first", "cgi: /cgi-bin/x.cgi: second"]
        );
    }
}

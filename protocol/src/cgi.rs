//! The messages exchanged between the server and the CGI runner.
//!
//! The channel starts with the usual handshake ([`ToRunner::Hello`] from
//! the server, [`FromRunner::Hello`] with [`Role::CgiRunner`](crate::Role)
//! back). Then the server sends one [`ToRunner::Run`] per CGI request and
//! the runner answers each with either [`FromRunner::Refused`] or, once
//! every check has passed and just before it starts the script,
//! [`FromRunner::Accepted`], then [`FromRunner::Started`] (which carries
//! the script's stdin and stdout pipe ends, or [`FromRunner::Refused`]
//! if the start failed), and for every started script, later, exactly one
//! [`FromRunner::Exited`]. A run the runner accepted may have started:
//! the server never sends it again. Several scripts run at once; replies to
//! different ids may interleave in any order, but for one id `Started`
//! always comes before `Exited`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Hello, Message};

/// Index in [`Received::fds`](crate::Received::fds) of a
/// [`FromRunner::Started`] of the write end of the script's stdin.
pub const STARTED_STDIN: usize = 0;

/// Index in [`Received::fds`](crate::Received::fds) of a
/// [`FromRunner::Started`] of the read end of the script's stdout.
pub const STARTED_STDOUT: usize = 1;

/// Server to CGI runner.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ToRunner {
    Hello(Hello),
    Run(CgiRun),
}

impl Message for ToRunner {}

/// Asks the runner to start one script.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CgiRun {
    /// Chosen by the server; echoed in every reply about this script.
    pub id: u64,
    /// The script, relative to the root, normalised, no leading slash (e.g. "cgi-bin/env.cgi").
    pub script: String,
    /// The complete environment for the script (the server builds the RFC 3875 variables; the runner adds PATH if absent and nothing else).
    pub env: Vec<(String, String)>,
    /// Kill the script's whole process group after this long (0: no
    /// time limit).
    pub timeout_ms: u64,
}

/// CGI runner to server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FromRunner {
    Hello(Hello),
    /// The script runs. Carries two descriptors, in this order: the write end of the script's stdin, the read end of its stdout (both close-on-exec in the server; the runner closes its copies right after sending).
    ///
    /// See [`STARTED_STDIN`] and [`STARTED_STDOUT`]. Both are in blocking
    /// mode as received: the server sets them non-blocking itself.
    Started {
        id: u64,
        pid: u32,
    },
    /// The script could not be started.
    Refused {
        id: u64,
        refusal: Refusal,
    },
    /// The script ended (or was killed).
    Exited {
        id: u64,
        exit: ExitInfo,
        timed_out: bool,
    },
    /// Every check passed and the script is about to start: from now on
    /// the run may have happened, so a runner that dies before `Started`
    /// costs this request (502), never a second run.
    Accepted {
        id: u64,
    },
}

impl Message for FromRunner {
    fn descriptor_count(&self) -> usize {
        match self {
            FromRunner::Started { .. } => 2,
            _ => 0,
        }
    }
}

/// Why a script was not started (the error of the runner's script lookup
/// and spawn, sent to the server as data).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such script beneath the root (HTTP 404).
    #[error("not found")]
    NotFound,
    /// There, but not to be run: outside the root, hidden, not a regular
    /// file, not executable (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The kernel refused to execute it: a bad interpreter line, a binary
    /// for another machine, too little memory (HTTP 500).
    #[error("cannot be executed: {0}")]
    ExecFailed(String),
    /// Too many scripts are running already (HTTP 503).
    #[error("too many scripts running")]
    Overloaded,
}

/// How a script ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitInfo {
    /// True for an exit status of 0.
    pub fn success(&self) -> bool {
        *self == ExitInfo::Code(0)
    }
}

// Written out rather than derived with thiserror: an exit is data, not an
// error, and thiserror would make it one.
impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(code) => write!(f, "exit status {code}"),
            ExitInfo::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

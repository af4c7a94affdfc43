//! Standalone mode: run one script from the command line, for debugging,
//! with a basic CGI environment; its raw output (CGI header lines
//! included) goes to our stdout, its stderr to our stderr.
//!
//! The same rules as in child mode apply: the script is resolved beneath
//! the root, runs in its own process group, is killed with that group
//! after `--timeout`, and whatever it leaves running in the group is
//! killed [`GRACE`] after it exits.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::{error_log, ExitInfo};

use crate::cli::Cli;
use crate::script_lookup::{Resolver, Script};
use crate::script_loop::GRACE;
use crate::script_spawn::{self, Streams, DEFAULT_PATH};

/// Exit status for usage errors, an unusable root and scripts that could
/// not be started.
pub const USAGE: u8 = protocol::child_setup::USAGE_EXIT_STATUS;

/// How often the script is checked on while it runs.
const TICK: Duration = Duration::from_millis(5);

/// Methods whose request has no body: stdin is not read for them.
const BODYLESS: [&str; 2] = ["GET", "HEAD"];

/// Runs the script named on the command line.
pub fn run(cli: &Cli) -> ExitCode {
    let Some(arg) = cli.script.as_deref() else {
        error_log!("a SCRIPT or --channel-fd is required (see --help)");
        return ExitCode::from(USAGE);
    };
    let resolver = match Resolver::open(&cli.root) {
        Ok(resolver) => resolver,
        Err(e) => {
            error_log!("{e}");
            return ExitCode::from(USAGE);
        }
    };
    let rel = arg.strip_prefix('/').unwrap_or(arg);
    let shown = format!("/{rel}");
    let refused = |why: &dyn std::fmt::Display| {
        error_log!("{shown}: {why}");
        ExitCode::from(USAGE)
    };
    let script = match resolver.resolve(rel) {
        Ok(script) => script,
        Err(refusal) => return refused(&refusal),
    };
    let body = if BODYLESS.contains(&cli.method.as_str()) {
        None
    } else {
        let mut body = Vec::new();
        if let Err(e) = io::stdin().lock().read_to_end(&mut body) {
            return refused(&format!("reading the request body from stdin: {e}"));
        }
        Some(body)
    };
    let env = environment(cli, &shown, &script, &resolver, body.as_deref());
    let streams = if body.is_some() {
        Streams::InheritOutput
    } else {
        Streams::OutputOnly
    };
    let mut cmd = match script_spawn::command(&script, &env, streams) {
        Ok(cmd) => cmd,
        Err(refusal) => return refused(&refusal),
    };
    let mut child = match script_spawn::spawn(&mut cmd, &script) {
        Ok(child) => child,
        Err(refusal) => return refused(&refusal),
    };
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    if let (Some(mut stdin), Some(body)) = (child.stdin.take(), body) {
        // A script that does not read its body (or dies) makes this fail
        // with EPIPE, which is its business. Not joined: a script that
        // never reads is killed by the time limit, which ends the write.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }

    let deadline = Instant::now().checked_add(Duration::from_secs(cli.timeout));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => {
                error_log!("{shown}: waiting for the script: {e}");
                break None;
            }
        }
        if !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        std::thread::sleep(TICK);
    };
    end_group(pgid);
    let _ = io::stdout().flush();

    let exit = status.and_then(|status| {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Some(ExitInfo::Code(code)),
            (None, Some(signal)) => Some(ExitInfo::Signal(signal)),
            (None, None) => None,
        }
    });
    if timed_out {
        error_log!("{shown}: killed after {} s (--timeout)", cli.timeout);
        return ExitCode::FAILURE;
    }
    match exit {
        Some(exit) if exit.success() => ExitCode::SUCCESS,
        Some(exit) => {
            error_log!("{shown}: {exit}");
            ExitCode::FAILURE
        }
        None => ExitCode::FAILURE,
    }
}

/// Gives what is left of the script's process group [`GRACE`] to finish,
/// then kills it.
fn end_group(pgid: Pid) {
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if killpg(pgid, None) == Err(Errno::ESRCH) {
            return;
        }
        std::thread::sleep(TICK);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
}

/// The basic CGI environment of standalone mode.
fn environment(
    cli: &Cli,
    script_name: &str,
    script: &Script,
    resolver: &Resolver,
    body: Option<&[u8]>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("REQUEST_METHOD", cli.method.clone()),
        ("QUERY_STRING", cli.query.clone()),
        ("SCRIPT_NAME", script_name.to_string()),
        (
            "SCRIPT_FILENAME",
            script.path.to_string_lossy().into_owned(),
        ),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
        (
            "SERVER_SOFTWARE",
            concat!("amped-cgi-runner/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        ("SERVER_NAME", "localhost".to_string()),
        ("SERVER_PORT", "80".to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        (
            "DOCUMENT_ROOT",
            resolver.root_path().to_string_lossy().into_owned(),
        ),
        ("PATH", DEFAULT_PATH.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    if let Some(path_info) = &cli.path_info {
        env.push(("PATH_INFO".into(), path_info.clone()));
    }
    if let Some(body) = body {
        env.push(("CONTENT_LENGTH".into(), body.len().to_string()));
    }
    env
}

//! The amped disk helper.
//!
//! Run by the server with `--channel-fd N`, it serves lookups over that
//! inherited Unix socket: each request path is resolved beneath the
//! document root and answered with the file's bytes (small files) or an
//! open descriptor (large ones), and windows of large files are read on
//! the server's behalf when their pages may not be in memory. Run by hand with a `PATH`, it answers that
//! one lookup and prints the result. See `helper --help`.
//!
//! - [`cli`]: the command line.
//! - [`file_lookup`]: request path to outcome, beneath the root.
//! - [`lookup_loop`]: the channel loop of child mode.
//! - [`window_read`]: reading a window of a file the server is sending.
//! - [`delay`]: the `AMPED_TEST_HELPER_DELAY` and `AMPED_TEST_HELPER_GATE`
//!   test hooks.
//! - [`exit_hook`]: the `AMPED_TEST_HELPER_EXIT_IF` test hook.
//! - [`misnumber_hook`]: the `AMPED_TEST_HELPER_MISNUMBER` test hook.
//! - [`report`]: the human-readable output of standalone mode.

mod cli;
mod delay;
mod exit_hook;
mod file_lookup;
mod listing;
mod lookup_loop;
mod misnumber_hook;
mod report;
mod window_read;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::Signal;
use protocol::child_setup::take_channel;
use protocol::error_log;

use crate::cli::Cli;
use crate::file_lookup::Resolver;
use crate::report::Found;

/// Exit status for usage errors and an unusable root (as clap uses).
const USAGE: u8 = protocol::child_setup::USAGE_EXIT_STATUS;

fn main() -> ExitCode {
    // Seen before anything else, so a parent that dies while we start up
    // is noticed (see `protocol::child_setup::die_with_parent`).
    let ppid_at_start = nix::unistd::getppid();
    let cli = Cli::parse();
    error_log::set_prefix(match cli.slot {
        // Named once for the life of the process.
        Some(n) => Box::leak(format!("helper-{n}").into_boxed_str()),
        None => "helper",
    });
    // Reopen the server's error log file on the SIGHUP it forwards.
    if let Err(e) = protocol::log_file::follow_from_env() {
        error_log!("cannot follow the error log file: {e}");
    }
    match cli.channel_fd {
        Some(fd) => run_child(&cli, fd, ppid_at_start),
        None => run_standalone(&cli),
    }
}

fn open_root(cli: &Cli) -> Option<Resolver> {
    match Resolver::open(&cli.root, cli.inline_max) {
        Ok(resolver) => Some(resolver.with_listing(cli.dir_listing)),
        Err(e) => {
            error_log!("{e}");
            None
        }
    }
}

fn run_child(cli: &Cli, fd: i32, ppid_at_start: nix::unistd::Pid) -> ExitCode {
    if exit_hook::triggered() {
        error_log!("exiting at start ({} is set)", exit_hook::ENV_VAR);
        return ExitCode::from(exit_hook::EXIT_STATUS);
    }
    // SIGKILL: the helper has nothing to clean up.
    let mut channel = match take_channel(fd, ppid_at_start, Signal::SIGKILL) {
        Ok(channel) => channel,
        Err(e) => {
            error_log!("{e}");
            return ExitCode::from(e.exit_status());
        }
    };
    let Some(resolver) = open_root(cli) else {
        return ExitCode::from(USAGE);
    };
    let delay = delay::Delay::from_env();
    match lookup_loop::serve(&mut channel, &resolver, delay.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_peer_gone() => ExitCode::SUCCESS,
        Err(e) => {
            error_log!(pid; "{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_standalone(cli: &Cli) -> ExitCode {
    let Some(path) = cli.path.as_deref() else {
        error_log!("a PATH or --channel-fd is required (see --help)");
        return ExitCode::from(USAGE);
    };
    let Some(resolver) = open_root(cli) else {
        return ExitCode::from(USAGE);
    };
    let mut stdout = std::io::stdout().lock();
    let found = report::report(&resolver, path, &mut stdout)
        .and_then(|found| stdout.flush().map(|()| found));
    match found {
        Ok(Found::Yes) => ExitCode::SUCCESS,
        Ok(Found::No) => ExitCode::FAILURE,
        Err(e) => {
            error_log!("writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}

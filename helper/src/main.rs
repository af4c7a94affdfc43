//! The amped disk helper.
//!
//! Run by the server with `--channel-fd N`, it serves lookups over that
//! inherited Unix socket: each request path is resolved beneath the
//! document root and answered with the file's bytes (small files) or an
//! open descriptor (large ones). Run by hand with a `PATH`, it answers that
//! one lookup and prints the result. See `helper --help`.
//!
//! - [`cli`]: the command line.
//! - [`resolve`]: path to outcome, beneath the root.
//! - [`serve`]: the channel loop of child mode.
//! - [`child`]: parent-death signal and the inherited socket.
//! - [`delay`]: the `AMPED_TEST_HELPER_DELAY` and `AMPED_TEST_HELPER_GATE`
//!   test hooks.
//! - [`exit_hook`]: the `AMPED_TEST_HELPER_EXIT_IF` test hook.
//! - [`report`]: the human-readable output of standalone mode.

mod child;
mod cli;
mod delay;
mod exit_hook;
mod report;
mod resolve;
mod serve;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::report::Found;
use crate::resolve::Resolver;

/// Exit status for usage errors and an unusable root (as clap uses).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    // Seen before anything else, so a parent that dies while we start up
    // is noticed (see `child::die_with_parent`).
    let ppid_at_start = nix::unistd::getppid();
    let cli = Cli::parse();
    match cli.channel_fd {
        Some(fd) => run_child(&cli, fd, ppid_at_start),
        None => run_standalone(&cli),
    }
}

fn open_root(cli: &Cli) -> Option<Resolver> {
    match Resolver::open(&cli.root, cli.inline_max) {
        Ok(resolver) => Some(resolver),
        Err(e) => {
            protocol::error_log!("helper: {e}");
            None
        }
    }
}

fn run_child(cli: &Cli, fd: i32, ppid_at_start: nix::unistd::Pid) -> ExitCode {
    if exit_hook::triggered() {
        protocol::error_log!("helper: exiting at start ({} is set)", exit_hook::ENV_VAR);
        return ExitCode::from(exit_hook::EXIT_STATUS);
    }
    if let Err(e) = child::die_with_parent(ppid_at_start) {
        protocol::error_log!("helper: {e}");
        return ExitCode::SUCCESS;
    }
    let mut channel = match child::adopt_channel(fd) {
        Ok(channel) => channel,
        Err(e) => {
            protocol::error_log!("helper: --channel-fd: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let Some(resolver) = open_root(cli) else {
        return ExitCode::from(USAGE);
    };
    let delay = delay::Delay::from_env();
    match serve::serve(&mut channel, &resolver, delay.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if serve::is_peer_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            protocol::error_log!("helper {}: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

fn run_standalone(cli: &Cli) -> ExitCode {
    let Some(path) = cli.path.as_deref() else {
        protocol::error_log!("helper: a PATH or --channel-fd is required (see --help)");
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
            protocol::error_log!("helper: writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}

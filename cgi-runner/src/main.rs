//! The amped CGI runner.
//!
//! Run by the server with `--channel-fd N`, it starts CGI scripts on
//! request over that inherited Unix socket, hands each script's stdin and
//! stdout pipe ends to the server, forwards its stderr to the error log,
//! reaps it, reports its exit status and kills its process group past its
//! time limit. Run by hand with a script path, it runs that one script and
//! copies its raw output. See `cgi-runner --help`.
//!
//! - [`cli`]: the command line.
//! - [`limits`]: resource limits every script inherits.
//! - [`script_lookup`]: script path to executable file, beneath the root.
//! - [`script_spawn`]: starting one script.
//! - [`script_loop`]: the event loop of child mode.
//! - [`sigchld`]: `SIGCHLD` into the loop through signal-hook's self-pipe.
//! - [`stderr`]: a script's stderr, line by line into the log.
//! - [`script_deadlines`]: time limits and grace periods.
//! - [`standalone`]: running one script from the command line.
//! - [`die_hook`]: the `AMPED_TEST_RUNNER_DIE_AFTER_SPAWN` test hook.
//! - [`hold_hook`]: the `AMPED_TEST_RUNNER_HOLD_AFTER_CHECK` test hook.
//!
//! The start-up shared with the disk helper (parent-death signal, the
//! inherited socket, the handshake) is [`protocol::child_setup`].

mod cli;
mod die_hook;
mod hold_hook;
mod limits;
mod script_deadlines;
mod script_lookup;
mod script_loop;
mod script_spawn;
mod sigchld;
mod standalone;
mod stderr;

use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::Signal;
use protocol::child_setup::take_channel;
use protocol::error_log;

use crate::cli::Cli;
use crate::standalone::USAGE;

fn main() -> ExitCode {
    // Seen before anything else, so a parent that dies while we start up
    // is noticed (see `protocol::child_setup::die_with_parent`).
    let ppid_at_start = nix::unistd::getppid();
    error_log::set_prefix("cgi-runner");
    // Reopen the server's error log file on the SIGHUP it forwards.
    if let Err(e) = protocol::log_file::follow_from_env() {
        error_log!("cannot follow the error log file: {e}");
    }
    let cli = Cli::parse();
    limits::apply();
    match cli.channel_fd {
        Some(fd) => run_child(&cli, fd, ppid_at_start),
        None => standalone::run(&cli),
    }
}

fn run_child(cli: &Cli, fd: i32, ppid_at_start: nix::unistd::Pid) -> ExitCode {
    // SIGTERM rather than SIGKILL: the runner catches it and kills its
    // scripts' process groups before it exits (see `sigchld`).
    let channel = match take_channel(fd, ppid_at_start, Signal::SIGTERM) {
        Ok(channel) => channel,
        Err(e) => {
            error_log!("{e}");
            return ExitCode::from(e.exit_status());
        }
    };
    // Orphaned descendants (a script's background children whose parent
    // exited) are reparented to the runner rather than to init, so that the
    // runner reaps them. Failure only means init reaps them instead.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let resolver = match script_lookup::Resolver::open(&cli.root) {
        Ok(resolver) => resolver,
        Err(e) => {
            error_log!("{e}");
            return ExitCode::from(USAGE);
        }
    };
    let sigchld = match sigchld::SigChld::install() {
        Ok(sigchld) => sigchld,
        Err(e) => {
            error_log!("cannot watch for SIGCHLD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runner = script_loop::Runner::new(channel, resolver, sigchld, cli.max_scripts);
    match runner.serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_peer_gone() => ExitCode::SUCCESS,
        Err(e) => {
            error_log!(pid; "{e}");
            ExitCode::FAILURE
        }
    }
}

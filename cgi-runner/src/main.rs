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
//! - [`child`]: parent-death signal, child-subreaper, the inherited socket.
//! - [`limits`]: resource limits every script inherits.
//! - [`resolve`]: script path to executable file, beneath the root.
//! - [`spawn`]: starting one script.
//! - [`runner`]: the event loop of child mode.
//! - [`sigchld`]: `SIGCHLD` into the loop through a self-pipe.
//! - [`stderr`]: a script's stderr, line by line into the log.
//! - [`timers`]: time limits and grace periods.
//! - [`standalone`]: running one script from the command line.

mod child;
mod cli;
mod limits;
mod resolve;
mod runner;
mod sigchld;
mod spawn;
mod standalone;
mod stderr;
mod timers;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::standalone::USAGE;

fn main() -> ExitCode {
    // Seen before anything else, so a parent that dies while we start up
    // is noticed (see `child::die_with_parent`).
    let ppid_at_start = nix::unistd::getppid();
    let cli = Cli::parse();
    limits::apply();
    match cli.channel_fd {
        Some(fd) => run_child(&cli, fd, ppid_at_start),
        None => standalone::run(&cli),
    }
}

fn run_child(cli: &Cli, fd: i32, ppid_at_start: nix::unistd::Pid) -> ExitCode {
    if let Err(e) = child::die_with_parent(ppid_at_start) {
        protocol::error_log!("cgi-runner: {e}");
        return ExitCode::SUCCESS;
    }
    child::become_subreaper();
    let sock = match child::adopt_channel(fd) {
        Ok(sock) => sock,
        Err(e) => {
            protocol::error_log!("cgi-runner: --channel-fd: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let resolver = match resolve::Resolver::open(&cli.root) {
        Ok(resolver) => resolver,
        Err(e) => {
            protocol::error_log!("cgi-runner: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let sigchld = match sigchld::SigChld::install() {
        Ok(sigchld) => sigchld,
        Err(e) => {
            protocol::error_log!("cgi-runner: cannot watch for SIGCHLD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runner = runner::Runner::new(sock, resolver, sigchld, cli.max_scripts);
    match runner.serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if runner::is_peer_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            protocol::error_log!("cgi-runner {}: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

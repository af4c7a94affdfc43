//! From the process's arguments to a [`Config`] to run with, or an exit:
//! the command line is parsed alone first (its mistakes are its own), then
//! with the configuration file's arguments before it (see
//! [`config_file`](crate::config_file)); `--print-man-page`,
//! `--print-completions` and `--check-config` act and exit here.
//!
//! Exit statuses: 2 for a command line or a configuration file that does
//! not parse, and for anything `--check-config` finds; 1 for a setting the
//! machine refuses when starting for real (a missing root, a missing
//! helper binary).

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::config::{Args, BadOption, Config};
use crate::config_file::{clap_message, FileArgs};
use crate::manual;

/// Exit status for a command line or a configuration that does not parse.
pub(crate) const USAGE: i32 = 2;
/// Exit status for a setting the machine refuses.
pub(crate) const REFUSED: i32 = 1;

/// What `main` does next.
pub enum Launch {
    Run(Box<Config>),
    /// Exit with this status; everything has been said.
    Exit(i32),
}

/// Parses `argv` (the program name first) and acts on the options that
/// end the process at once.
pub fn launch(argv: Vec<OsString>) -> Launch {
    let program = argv.first().cloned().unwrap_or_else(|| "server".into());
    let matches = match Args::command().try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(e) => return clap_exit(&e),
    };
    let cli = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => return clap_exit(&e),
    };
    if cli.print_man_page {
        return print(manual::write_man_page);
    }
    if let Some(shell) = cli.print_completions {
        return print(|out| manual::write_completions(shell, out));
    }
    let check = cli.check_config;
    let (args, file) = match &cli.config {
        None => (cli, None),
        Some(path) => {
            let file = match FileArgs::load(path) {
                Ok(file) => file,
                Err(e) => return fail(USAGE, &e.to_string()),
            };
            let both = std::iter::once(program)
                .chain(file.args.iter().cloned())
                .chain(argv.into_iter().skip(1));
            match <Args as clap::Parser>::try_parse_from(both) {
                Ok(args) => (args, Some(file)),
                Err(e) => {
                    let message = format!("{} (with {})", clap_message(&e), path.display());
                    return fail(USAGE, &message);
                }
            }
        }
    };
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(e) => {
            let message = locate(&e, file.as_ref(), &matches);
            return fail(if check { USAGE } else { REFUSED }, &message);
        }
    };
    if check {
        if let Some(short) = crate::startup::raise_descriptor_limit(&config) {
            warn_log!("{short}");
        }
        let source = file.as_ref().map_or("the command line".into(), |f| {
            format!("{} and the command line", f.path.display())
        });
        println!("configuration OK ({source})");
        return Launch::Exit(0);
    }
    Launch::Run(Box::new(config))
}

/// The message for a refused setting: with the file's position when the
/// option was set there and not on the command line.
fn locate(e: &anyhow::Error, file: Option<&FileArgs>, cli: &clap::ArgMatches) -> String {
    let plain = format!("{e:#}");
    let (Some(bad), Some(file)) = (e.downcast_ref::<BadOption>(), file) else {
        return plain;
    };
    let on_command_line = Args::command()
        .get_arguments()
        .find(|a| a.get_long() == Some(bad.key))
        .is_some_and(|a| cli.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine));
    match file.position_of(bad.key) {
        Some((line, column)) if !on_command_line => format!(
            "{}:{line}:{column}: key `{}`: {}",
            file.path.display(),
            bad.key,
            bad.message
        ),
        _ => plain,
    }
}

/// Help and version are printed by clap (exit 0); any other clap error is
/// one line and [`USAGE`].
fn clap_exit(e: &clap::Error) -> Launch {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Launch::Exit(0);
    }
    fail(USAGE, &format!("{} (see --help)", clap_message(e)))
}

fn fail(status: i32, message: &str) -> Launch {
    eprintln!("server: error: {message}");
    Launch::Exit(status)
}

/// Writes to stdout with `write`, then exits 0 (1 if stdout failed).
fn print(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Launch {
    let mut stdout = std::io::stdout().lock();
    match write(&mut stdout).and_then(|()| std::io::Write::flush(&mut stdout)) {
        Ok(()) => Launch::Exit(0),
        Err(e) => fail(REFUSED, &format!("cannot write to stdout: {e}")),
    }
}

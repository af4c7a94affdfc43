//! The `server` binary: parses options and runs the event loop.
//!
//! Every operator mistake ends in one line on stderr: exit status 2 for a
//! command line that does not parse (an unknown option, a value out of
//! range), 1 for a configuration the machine refuses (a missing root, a
//! port in use, a missing helper binary).

use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    protocol::error_log::set_prefix("amped");
    let args = match amped::Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("server: error: {first} (see --help)");
            std::process::exit(2);
        }
    };
    let result = amped::Config::from_args(args).and_then(amped::run);
    if let Err(e) = result {
        eprintln!("server: error: {e:#}");
        std::process::exit(1);
    }
}

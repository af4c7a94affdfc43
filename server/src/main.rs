//! The `server` binary: parses options and runs the event loop.

use clap::Parser;

fn main() {
    let args = amped::Args::parse();
    let result = amped::Config::from_args(args).and_then(amped::run);
    if let Err(e) = result {
        eprintln!("server: error: {e:#}");
        std::process::exit(1);
    }
}

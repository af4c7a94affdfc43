//! The `server` binary: reads the options (and the configuration file),
//! then runs the event loop.
//!
//! Every operator mistake ends in one line on stderr: exit status 2 for a
//! command line or configuration file that does not parse (an unknown
//! option or key, a value out of range) and for whatever `--check-config`
//! finds, 1 for a configuration the machine refuses (a missing root, a
//! port in use, a missing helper binary).

fn main() {
    protocol::error_log::set_prefix("server");
    let config = match amped::launch(std::env::args_os().collect()) {
        amped::Launch::Run(config) => config,
        amped::Launch::Exit(status) => std::process::exit(status),
    };
    if let Err(e) = amped::run(*config) {
        eprintln!("server: error: {e:#}");
        std::process::exit(1);
    }
}

//! amped's front server: one single-threaded, event-driven process that
//! owns every client connection and never blocks, with disk lookups done
//! by helper processes (the AMPED architecture of the Flash web server).
//!
//! `main.rs` only parses the command line and calls [`run`].

#[macro_use]
extern crate protocol;

pub mod access_log;
mod backoff;
pub mod cache;
pub mod cgi;
pub mod child;
pub mod config;
pub mod connection;
pub mod event;
mod hostile_input;
pub mod http;
pub mod listener;
pub mod output;
pub mod pool;
pub mod privileges;
pub mod respond;
pub mod server;
pub mod signals;
pub mod spawn;
pub mod status;
pub mod timers;

use std::io::Write;

use anyhow::Result;

pub use config::{Args, Config};

/// Starts the server, prints the `listening on` line and serves until
/// SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    let mut server = server::Server::start(config)?;
    let addr = server.local_addr();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}/")?;
        stdout.flush()?;
    }
    server.run()
}

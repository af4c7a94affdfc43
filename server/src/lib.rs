//! amped's front server: one single-threaded, event-driven process that
//! owns every client connection and never blocks, with disk lookups done
//! by helper processes (the AMPED architecture of the Flash web server).
//!
//! `main.rs` only calls [`launch`] (the command line and the
//! configuration file) and [`run`].
//!
//! Visibility: an item used outside its module is `pub(crate)` (this is
//! a binary's library; nothing but `main.rs` and the tests uses it), held
//! by `unreachable_pub`.

#![deny(unreachable_pub)]

#[macro_use]
extern crate protocol;

mod access_log;
mod backoff;
mod cache;
mod cgi;
mod command_line;
mod config;
mod config_file;
mod conn_id;
mod conn_table;
mod connection;
mod event;
mod hostile_input;
mod http;
mod inherited_fds;
mod listener;
mod listing;
mod manual;
mod next;
mod output;
mod privileges;
mod process_group;
mod respond;
mod send;
mod send_path;
mod server;
mod signals;
mod startup;
mod static_files;
mod status;
mod supervise;
mod systemd;
mod token;
mod unlinked_file;
mod workers;

use std::io::Write;

use anyhow::Result;

pub use command_line::{launch, Launch};
pub use config::{Args, Config};

/// Starts the server (or, with `--workers` above 1, the workers and their
/// supervising parent), prints the `listening on` line and serves until
/// SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    // Before any child starts: what the server was started with stays here.
    inherited_fds::close_on_exec_above_stderr()
        .map_err(|e| anyhow::anyhow!("cannot mark inherited descriptors close-on-exec: {e}"))?;
    if config.workers > 1 && !config.worker {
        let mut pool = workers::Pool::start(&config, std::env::args_os().collect())?;
        print_listening(pool.local_addr())?;
        pool.notify_ready();
        return pool.run();
    }
    let worker = config.worker;
    let mut server = server::Server::start(config)?;
    // A worker reports to its parent (NOTIFY_SOCKET), which prints the
    // line once for all.
    if !worker {
        print_listening(server.local_addr())?;
    }
    server.notify_ready();
    server.run()
}

/// `listening on http://ADDR:PORT/` on stdout, flushed.
fn print_listening(addr: std::net::SocketAddr) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}/")?;
    stdout.flush()?;
    Ok(())
}

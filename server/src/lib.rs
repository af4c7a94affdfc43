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
mod h2;
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
mod tls_config;
mod tls_context;
mod token;
mod transport;
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
        print_listening(&pool.local_addrs())?;
        pool.notify_ready();
        return pool.run();
    }
    let worker = config.worker;
    let mut server = server::Server::start(config)?;
    // A worker reports to its parent (NOTIFY_SOCKET), which prints the
    // line once for all.
    if !worker {
        print_listening(&server.local_addrs())?;
    }
    server.notify_ready();
    server.run()
}

/// `listening on http://ADDR:PORT/ https://ADDR:PORT/ ...` on stdout,
/// one URL for each listening socket, on one line, flushed.
fn print_listening(addrs: &[(std::net::SocketAddr, bool)]) -> Result<()> {
    let urls: Vec<String> = addrs
        .iter()
        .map(|(addr, tls)| format!("{}://{addr}/", if *tls { "https" } else { "http" }))
        .collect();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", urls.join(" "))?;
    stdout.flush()?;
    Ok(())
}

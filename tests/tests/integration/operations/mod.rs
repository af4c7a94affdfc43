//! Running the server: the command line, the configuration file, the manual, logs, the status page, draining on SIGTERM, workers, systemd, --user, limits, installation, a load balancer in front.

mod access_log;
mod admission;
mod cli;
mod config_file;
mod drain;
mod fd_limit;
mod haproxy;
mod inherited_fds;
mod install;
mod logs;
mod manual;
mod scale;
mod status_page;
mod systemd;
mod tls_listeners;
mod tls_workers;
mod user_switch;
mod workers;

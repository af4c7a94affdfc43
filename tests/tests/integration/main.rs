//! The integration tests, one test binary (built and linked once): each
//! module runs the real `server`, `helper` and `cgi-runner` binaries over
//! real sockets, most of them under each event backend (select, poll,
//! epoll). Shared fixtures live in the `tests` library (`tests/src`).

mod access_log;
mod admission;
mod cache_freshness;
mod cgi_bodies;
mod cgi_env;
mod cgi_exec_race;
mod cgi_nonblocking;
mod cgi_processes;
mod cgi_runner_death;
mod cgi_security;
mod cgi_semantics;
mod cgi_spool;
mod cgi_streaming;
mod child_deaths;
mod cli;
mod config_file;
mod curl;
mod dir_listing;
mod dot_file_links;
mod extreme_files;
mod fd_limit;
mod gzip_static;
mod half_close;
mod haproxy;
mod http_conditional;
mod http_headers;
mod http_host;
mod http_paths;
mod http_ranges;
mod http_requests;
mod hung_lookups;
mod inherited_fds;
mod install;
mod keepalive_limits;
mod large_file_memory;
mod listing_memory;
mod logs;
mod manual;
mod never_blocks;
mod regressions;
mod scale;
mod slow_disk;
mod static_files;
mod stuck_reads;
mod supervision;
mod systemd;
mod timeouts;
mod user_switch;
mod window_memory;
mod worker_death;
mod workers;

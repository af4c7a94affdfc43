//! CGI: the environment, request bodies and their spool, streaming, what a script may answer, its processes, the runner, and the checks on what runs.

mod bodies;
mod env;
mod exec_race;
mod https_cgi;
mod informational_status;
mod nonblocking;
mod processes;
mod runner_death;
mod security;
mod semantics;
mod spool;
mod streaming;

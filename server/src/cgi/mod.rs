//! CGI/1.1 (RFC 3875): the server's half. Scripts run in processes the
//! `cgi-runner` child forks; the server builds their environment, streams
//! the request body in and the output out inside its event loop.

pub mod chunked;
pub mod env;
pub mod exchange;
pub mod runner;
pub mod script_head;
pub mod serve;

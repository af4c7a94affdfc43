//! CGI/1.1 (RFC 3875): the server's half. Scripts run in processes the
//! `cgi-runner` child forks; the server builds their environment, streams
//! the request body in and the output out inside its event loop.

pub(crate) mod chunked;
pub(crate) mod env;
pub(crate) mod exchange;
pub(crate) mod runner_link;
pub(crate) mod script_head;
pub(crate) mod serve;

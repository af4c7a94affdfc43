//! CGI/1.1 (RFC 3875): the server's half. Scripts run in processes the
//! `cgi-runner` child forks; the server builds their environment,
//! collects the request body before the script starts, feeds it in and
//! streams the output out inside its event loop.
//!
//! [`driver::Cgi`] is the subsystem the loop talks to; the rest are its
//! parts (the runner link is `supervise::runner_link`): one exchange per request, its pipes, the body
//! spool, and the parsers (chunked request bodies, the script's header
//! block).

pub(crate) mod driver;
pub(crate) mod env;
pub(crate) mod exchange;
pub(crate) mod pipes;
pub(crate) mod pump;
pub(crate) mod redirect;
pub(crate) mod script_head;
pub(crate) mod spool;

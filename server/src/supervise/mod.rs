//! Supervision of the server's children: the disk helpers and the CGI
//! runner are started, watched through SIGCHLD and their sockets, and
//! restarted with back-off; orphaned scripts are reaped.

pub(crate) mod child_link;
pub(crate) mod helper_pool;
pub(crate) mod spawn_child;

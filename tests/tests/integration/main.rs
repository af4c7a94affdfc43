//! The integration tests, one test binary (built and linked once): each
//! module runs the real `server`, `helper` and `cgi-runner` binaries over
//! real sockets, most of them under each event backend (select, poll,
//! epoll). They are grouped by subject, a folder each, one subject a
//! file. Shared fixtures live in the `tests` library (`tests/src`).

mod cgi;
mod children;
mod files;
mod h2;
mod http;
mod operations;

//! Shared fixtures for the integration tests: building and locating the real
//! binaries, starting a server on an OS-chosen port, a small raw HTTP/1.1
//! client, temporary and shared document roots, process limits, and a
//! slow FUSE disk with files whose pages are not in memory.
//!
//! Every test in `tests/tests/` runs the real `server` (and its helpers)
//! over real sockets; nothing here mocks the server.

pub mod binaries;
pub mod cgi;
pub mod child_channel;
pub mod docroot;
pub mod gate;
pub mod h2;
pub mod http_client;
pub mod limits;
pub mod options;
pub mod page_cache;
pub mod procfs;
pub mod server_process;
pub mod slow_disk;
pub mod socket;
pub mod status;
pub mod streaming;
pub mod tls;

pub use binaries::{helper_bin, run_with_deadline, server_bin, workspace_root, RunOutput};
pub use docroot::{site_docroot, www_docroot, FixtureSite, TempDocroot, WwwDocroot};
pub use gate::HelperGate;
pub use http_client::{assert_bytes_eq, Connection, Response};
pub use limits::raise_nofile_limit;
pub use server_process::ServerProcess;

use std::time::Duration;

/// The three readiness backends every behavioural test runs under.
pub const BACKENDS: [&str; 3] = ["select", "poll", "epoll"];

/// The deadline used for every wait that should normally be instant.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Generates `mod select`, `mod poll` and `mod epoll`, each with one `#[test]`
/// per listed function, calling `super::name(backend)`.
///
/// ```ignore
/// fn head_has_no_body(backend: &str) { /* ... */ }
/// tests::per_backend!(head_has_no_body);
/// ```
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {
        $crate::per_backend!(@module select, "select", $($name),+);
        $crate::per_backend!(@module poll, "poll", $($name),+);
        $crate::per_backend!(@module epoll, "epoll", $($name),+);
    };
    (@module $module:ident, $backend:literal, $($name:ident),+) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::$name($backend)
                }
            )+
        }
    };
}

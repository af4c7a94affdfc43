//! Resource limits, applied to the runner itself at start-up so that every
//! script inherits them (setting them in the child between fork and exec
//! would need `pre_exec`, which rules out the faster `posix_spawn` path of
//! `std::process::Command`).

use nix::sys::resource::{setrlimit, Resource};

/// Disables core dumps (soft and hard limit 0, so a script cannot raise it
/// again): a crashing script must not fill the disk with cores, nor write
/// its memory (request data) anywhere.
pub fn apply() {
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        protocol::error_log!("cannot disable core dumps: {}", e.desc());
    }
}

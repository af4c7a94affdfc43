//! The test hook `AMPED_TEST_HELPER_MISNUMBER=SUBSTRING`.
//!
//! A lookup whose path contains SUBSTRING is answered under the id before
//! its own: a reply to a job this helper was not sent (another helper's,
//! when the server numbered them one after the other). Only the helper
//! reads it; the integration tests use it to show that the server takes a
//! reply only from the helper its job went to.

/// The name of the environment variable.
pub const ENV_VAR: &str = "AMPED_TEST_HELPER_MISNUMBER";

/// The id to answer lookup `id` of `path` under.
pub fn reply_id(id: u64, path: &str) -> u64 {
    match std::env::var(ENV_VAR) {
        Ok(needle) if !needle.is_empty() && path.contains(&needle) => id.wrapping_sub(1),
        _ => id,
    }
}

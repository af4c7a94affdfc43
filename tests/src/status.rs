//! Reading the server's status page as JSON (`--status-path PATH`, then
//! `PATH?json`) and the counters in it.

use serde_json::Value;

use crate::server_process::ServerProcess;

/// Fetches `path?json` on a new connection and parses it; panics unless
/// the answer is a 200 with valid JSON.
pub fn status_json(server: &ServerProcess, path: &str) -> Value {
    let response = server.connect().get(&format!("{path}?json"));
    response.assert_status(200);
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "the status page's JSON does not parse ({e}):\n{}",
            response.body_text()
        )
    })
}

/// The non-negative integer at `pointer` (`/cache/misses`) in a status
/// page; panics if there is none.
pub fn status_number(status: &Value, pointer: &str) -> u64 {
    status
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("status JSON has no integer at {pointer}: {status}"))
}

/// `helper_restarts` in a status page: one count per helper.
pub fn helper_restarts(status: &Value) -> Vec<u64> {
    status
        .get("helper_restarts")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("status JSON has no helper_restarts array: {status}"))
        .iter()
        .map(|n| {
            n.as_u64()
                .unwrap_or_else(|| panic!("helper_restarts holds {n}"))
        })
        .collect()
}

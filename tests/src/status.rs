//! Reading the server's status page as JSON (`--status-path PATH`, then
//! `PATH?json`) and the counters in it.

use serde_json::Value;

use crate::procfs::poll_until;
use crate::server_process::ServerProcess;
use crate::DEADLINE;

/// Where the tests put the status page (`--status-path`).
pub const STATUS_PATH: &str = "/server-status";

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

/// The status page's `open_connections` (this fetch's own connection is
/// one of them), counted once the loop has handled everything that was
/// pending when this was called. The page is fetched twice on one new
/// connection: the server may answer the first fetch as it accepts the
/// connection, before the other descriptors ready in that same wait (a
/// closed client's FIN, say); the second is sent after that answer, so it
/// is read in a later wait, by when everything pending before the
/// connection was made has been handled.
pub fn open_connections_after_a_turn(server: &ServerProcess) -> u64 {
    let mut conn = server.connect();
    let path = format!("{STATUS_PATH}?json");
    conn.get(&path).assert_status(200);
    let response = conn.get(&path);
    response.assert_status(200);
    let json: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "the status page's JSON does not parse ({e}):\n{}",
            response.body_text()
        )
    });
    status_number(&json, "/open_connections")
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

/// Waits (up to [`DEADLINE`]) until the status page at [`STATUS_PATH`]
/// counts `n` helper lookups in flight; panics if it never does.
pub fn wait_for_lookups_in_flight(server: &ServerProcess, n: u64) {
    let mut status = Value::Null;
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(server, STATUS_PATH);
            status_number(&status, "/helper_lookups_in_flight") == n
        }),
        "the status page never showed {n} helper lookups in flight: {status}"
    );
}

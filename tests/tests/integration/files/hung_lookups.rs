//! A lookup that hangs in every helper (a hung NFS or FUSE file), under
//! each event backend: its client gets 503 after `--helper-timeout`, the
//! silent helper is restarted and the lookup tried once more, then it is
//! dropped: helpers are not killed one every timeout for ever, and other
//! files are served throughout.

use tests::procfs::{poll_until, wait_for_live_children};
use tests::status::{helper_restarts, status_json, status_number, STATUS_PATH};
use tests::{per_backend, HelperGate, ServerProcess, TempDocroot, DEADLINE};

fn a_hung_lookup_is_dropped_after_two_helpers(backend: &str) {
    let docroot = TempDocroot::new(&format!("hung-{backend}"));
    docroot.write("hung.html", b"never answered\n");
    docroot.write("fine.html", b"fine\n");
    // The gate is never opened: every helper holds the lookup.
    let gate = HelperGate::new("hung");
    let (var, value) = gate.env("hung.html");
    let server = ServerProcess::serve_with_env(
        docroot.path(),
        backend,
        &[
            "--helpers",
            "2",
            "--helper-timeout",
            "1",
            "--status-path",
            STATUS_PATH,
        ],
        &[(var, &value)],
    );
    server.connect().get("/hung.html").assert_error_page(503);
    // Tried on a second helper, then dropped: nothing left in flight.
    let mut status = status_json(&server, STATUS_PATH);
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(&server, STATUS_PATH);
            status_number(&status, "/helper_lookups_in_flight") == 0
        }),
        "the hung lookup is still in flight: {status}\n{}",
        server.stderr_text()
    );
    // The log is read by a thread of the fixture: wait for the line.
    assert!(
        poll_until(DEADLINE, || server
            .stderr_text()
            .contains("hung 2 helpers; dropped")),
        "{}",
        server.stderr_text()
    );
    let response = server.connect().get("/fine.html");
    response.assert_status(200);
    assert_eq!(response.body_text(), "fine\n");
    // Counted once both helpers are back (a restart still to come would
    // otherwise be missed).
    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");
    wait_for_live_children(pid, "helper", 2);
    let status = status_json(&server, STATUS_PATH);
    let restarts: u64 = helper_restarts(&status).iter().sum();
    assert!(
        restarts <= 2,
        "{restarts} helper restarts for one hung lookup"
    );
}

per_backend!(a_hung_lookup_is_dropped_after_two_helpers);

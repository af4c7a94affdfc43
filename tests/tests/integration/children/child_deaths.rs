//! A child's death loses no client request, under each event backend,
//! shown deterministically (one kill at a known moment, not chaos):
//!
//! - a helper crash: with `AMPED_TEST_HELPER_GATE` a lookup of /slow.html
//!   is held in a helper; every helper is SIGKILLed while it is in flight;
//!   the server restarts them and re-sends the lookup, and once the gate
//!   opens the client gets a correct 200 (only a restarted helper can have
//!   given it), not a 503;
//! - the cgi-runner's death: a script that waits for a gate file is
//!   running when the runner is SIGKILLed; once the gate opens the client
//!   gets the complete response, and the next CGI request runs on the new
//!   runner.

use tests::cgi::{wait_for_file, CgiSite, TEXT_HEAD};
use tests::http_client::request_bytes;
use tests::procfs::{
    is_alive, live_children_named, poll_until, send_signal, wait_for_live_children,
};
use tests::status::{
    helper_restarts, status_json, status_number, wait_for_lookups_in_flight, STATUS_PATH,
};
use tests::{assert_bytes_eq, per_backend, site_docroot, HelperGate, ServerProcess, DEADLINE};

fn helper_crash_loses_no_request(backend: &str) {
    let site = site_docroot();
    let gate = HelperGate::new("helper-crash");
    // The gated server's --helper-timeout is far past the test: the request
    // must be answered because it was re-sent, not because a timeout ran
    // out.
    let server = gate.serve(&site.root, backend, "slow");
    let pid = server.pid_t();
    let helpers = wait_for_live_children(pid, "helper", 2);

    let mut client = server.connect();
    client.send(request_bytes("GET", "/slow.html", &[]).as_bytes());
    // The lookup is with a helper, held at the gate, once the status page
    // counts it in flight.
    wait_for_lookups_in_flight(&server, 1);
    for &helper in &helpers {
        assert!(send_signal(helper, libc::SIGKILL), "kill helper {helper}");
    }
    // Both are restarted, and the lookup is still in flight: with a new
    // helper, held at the gate again.
    let mut status = status_json(&server, STATUS_PATH);
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(&server, STATUS_PATH);
            helper_restarts(&status).iter().all(|&n| n >= 1)
                && status_number(&status, "/helper_lookups_in_flight") == 1
                && helpers.iter().all(|&p| !is_alive(p))
        }),
        "the helpers were not restarted with the lookup in flight: {status}"
    );

    gate.open();
    let response = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("the request in flight when its helper died: {e}"));
    // Only a helper started after the kill can have answered it.
    response.assert_status(200);
    assert_bytes_eq("/slow.html", &response.body, &site.file("slow.html"));
}

/// Lines the gated script prints after the gate opens.
const GATED_LINES: u32 = 20_000;

fn gated_body() -> Vec<u8> {
    let mut body = b"before the gate\n".to_vec();
    for i in 1..=GATED_LINES {
        body.extend_from_slice(format!("{i}\n").as_bytes());
    }
    body
}

fn scripts_survive_the_runner_s_death(backend: &str) {
    let site = CgiSite::new("runner-death");
    let started = site.outside().join("started");
    let gate = site.outside().join("gate");
    site.script(
        "cgi-bin/gated.cgi",
        &format!(
            "{TEXT_HEAD}\necho 'before the gate'\ntouch '{started}'\n\
             while [ ! -e '{gate}' ]; do sleep 0.05; done\nseq 1 {GATED_LINES}\n",
            started = started.display(),
            gate = gate.display(),
        ),
    );
    site.script(
        "cgi-bin/after.cgi",
        &format!("{TEXT_HEAD}\necho 'the new runner works'\n"),
    );
    let server = ServerProcess::serve(site.root(), backend);
    let pid = server.pid_t();
    let runners = wait_for_live_children(pid, "cgi-runner", 1);

    let mut client = server.connect();
    client.send(request_bytes("GET", "/cgi-bin/gated.cgi", &[]).as_bytes());
    wait_for_file(&started);
    assert!(send_signal(runners[0], libc::SIGKILL), "kill the runner");
    // A new runner comes up (the first restart is immediate).
    let mut new_runner = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            new_runner = live_children_named(pid, "cgi-runner");
            new_runner.len() == 1 && new_runner[0] != runners[0]
        }),
        "no new cgi-runner after killing {}: {new_runner:?}",
        runners[0]
    );
    std::fs::write(&gate, b"").expect("open the gate");

    let response = client
        .try_read_response_dechunked(false)
        .unwrap_or_else(|e| panic!("the script running when its runner died: {e}"));
    response.assert_status(200);
    assert_bytes_eq("/cgi-bin/gated.cgi", &response.body, &gated_body());

    // Requests after the death run on the new runner.
    let after = server.connect().get_dechunked("/cgi-bin/after.cgi");
    after.assert_status(200);
    assert_eq!(after.body_text(), "the new runner works\n");
    assert_eq!(
        live_children_named(pid, "cgi-runner"),
        new_runner,
        "the new runner served it"
    );
}

per_backend!(
    helper_crash_loses_no_request,
    scripts_survive_the_runner_s_death
);

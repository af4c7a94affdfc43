//! A cgi-runner that dies between starting a script and telling the
//! server so (`AMPED_TEST_RUNNER_DIE_AFTER_SPAWN`), under each event
//! backend: the run is not sent again to the restarted runner, so the
//! script runs once, and the client gets 502; the next request runs
//! normally.

use std::fs;

use tests::cgi::{wait_for_file, CgiSite, TEXT_HEAD};
use tests::procfs::poll_until;
use tests::{per_backend, ServerProcess, DEADLINE};

fn a_run_the_runner_accepted_is_not_run_twice(backend: &str) {
    let site = CgiSite::new("runner-death");
    let runs = site.outside().join("runs");
    site.script(
        "cgi-bin/count.cgi",
        &format!(
            "echo run >> '{runs}'\n{TEXT_HEAD}\necho counted\n",
            runs = runs.display()
        ),
    );
    let hook = site.outside().join("die-once");
    fs::write(&hook, b"").expect("create the hook file");
    let hook_value = hook.to_string_lossy().into_owned();
    let server = ServerProcess::serve_with_env(
        site.root(),
        backend,
        &[],
        &[("AMPED_TEST_RUNNER_DIE_AFTER_SPAWN", &hook_value)],
    );
    let response = server.connect().get("/cgi-bin/count.cgi");
    response.assert_error_page(502);
    assert!(!hook.exists(), "the runner did not take the hook");
    // The script that did start wrote its line; the runner is back.
    wait_for_file(&runs);
    let response = server.connect().get_dechunked("/cgi-bin/count.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "counted\n");
    // Two requests, two runs: the lost one was not run again.
    let count = || {
        fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(poll_until(DEADLINE, || count() >= 2), "runs: {}", count());
    assert_eq!(count(), 2, "the first request's script ran twice");
}

per_backend!(a_run_the_runner_accepted_is_not_run_twice);

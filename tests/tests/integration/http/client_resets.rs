//! A client that sends a request and then resets the connection (closes
//! it with `SO_LINGER {1, 0}`) while the request waits, under each event
//! backend, on a sleeping CGI script or on a helper held back by the gate
//! hook, gets its connection closed: the server does not spin (it is
//! runnable in under half of the samples taken over the next 2 s, a test
//! that holds however loaded the machine is) and keeps serving; the
//! script and the held lookup outlast the watch by far.

use std::time::Duration;

use tests::cgi::{wait_for_file, CgiSite, Reaper, TEXT_HEAD};
use tests::http_client::request_bytes;
use tests::procfs::{poll_until, runnable_share};
use tests::socket::close_with_reset;
use tests::status::{open_connections_after_a_turn, wait_for_lookups_in_flight, STATUS_PATH};
use tests::{per_backend, site_docroot, HelperGate, ServerProcess};

/// How long the server's state is watched after the reset.
const WATCH: Duration = Duration::from_secs(2);
/// How long the script sleeps: far past the watch, even on a loaded
/// machine, so that the watch sees the server waiting on it. (The script
/// is killed when the test ends.)
const SCRIPT_SLEEPS_SECS: u32 = 60;

/// Waits until the status page's own connection is the only one open:
/// the reset connection is closed.
fn assert_reset_connection_closed(server: &ServerProcess, what: &str) {
    let open = || open_connections_after_a_turn(server);
    assert!(
        poll_until(Duration::from_secs(5), || open() == 1),
        "{what}: the reset connection is still open ({} open)",
        open()
    );
}

/// Samples the server's state for [`WATCH`] and panics if it was
/// runnable in half of the samples or more: an idle server sleeps in its
/// poller; one that spins on the dead connection is always runnable,
/// whether or not a loaded machine lets it run.
fn assert_no_spin(server: &ServerProcess, what: &str) {
    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");
    let share = runnable_share(pid, WATCH);
    assert!(
        share < 0.5,
        "{what}: the server was runnable in {:.0}% of the samples over the {WATCH:?} \
         after the client reset",
        share * 100.0
    );
}

fn reset_while_a_script_sleeps_does_not_spin(backend: &str) {
    let site = CgiSite::new("reset-cgi");
    let _reaper = Reaper::new(&site);
    let started = site.outside().join("started");
    site.script(
        "cgi-bin/sleepy.cgi",
        &format!(
            "touch '{}'\nsleep {SCRIPT_SLEEPS_SECS}\n{TEXT_HEAD}\necho late\n",
            started.display()
        ),
    );
    site.file("page.html", b"<p>still here</p>\n");
    let server = ServerProcess::serve_with(site.root(), backend, &["--status-path", STATUS_PATH]);
    let mut stream = server.connect_raw();
    std::io::Write::write_all(
        &mut stream,
        request_bytes("GET", "/cgi-bin/sleepy.cgi", &[]).as_bytes(),
    )
    .expect("send the request");
    wait_for_file(&started);
    close_with_reset(stream);
    assert_no_spin(&server, "a reset while a script sleeps");
    assert_reset_connection_closed(&server, "a reset while a script sleeps");
    server.connect().get("/page.html").assert_status(200);
}

fn reset_while_a_helper_is_held_does_not_spin(backend: &str) {
    let site = site_docroot();
    // The lookup is held until the test ends (the gate never opens), and
    // the helper is never thought stuck meanwhile.
    let gate = HelperGate::new("reset");
    let server = gate.serve(&site.root, backend, "slow");
    let mut stream = server.connect_raw();
    std::io::Write::write_all(
        &mut stream,
        request_bytes("GET", "/slow.html", &[]).as_bytes(),
    )
    .expect("send the request");
    wait_for_lookups_in_flight(&server, 1);
    close_with_reset(stream);
    assert_no_spin(&server, "a reset while a helper is held");
    assert_reset_connection_closed(&server, "a reset while a helper is held");
    server.connect().get("/index.html").assert_status(200);
}

per_backend!(
    reset_while_a_script_sleeps_does_not_spin,
    reset_while_a_helper_is_held_does_not_spin
);

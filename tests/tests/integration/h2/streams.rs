//! Streams and their windows, from a frame-level client, under each
//! event backend.
//!
//! - `--keepalive-requests 5`: the fifth stream gets GOAWAY(NO_ERROR)
//!   naming it, is answered, and the connection ends.
//! - A POST answered (405) before its body, which never comes, leaves its
//!   stream half-closed, and the connection still ends after
//!   `--keepalive-timeout` with GOAWAY(NO_ERROR).
//! - Flow control: a client whose stream window is 1,000 bytes, given
//!   back as it reads, gets a 200,000-byte file whole, never a DATA frame
//!   past its window.
//! - The `h2` package's own client (its connection state machine, a
//!   4,096-byte window given back as it reads) gets four streams at once,
//!   each whole.
//! - A window held at zero: the stream's response waits, the connection's
//!   other streams are answered meanwhile, and after `--send-timeout` the
//!   held stream is reset (INTERNAL_ERROR) while the connection goes on
//!   and takes a new stream.
//! - A drain (SIGTERM) with a script's stream in flight: GOAWAY(NO_ERROR)
//!   naming that stream as the last, a stream opened after it is not
//!   answered, the script's stream is finished whole, then the connection
//!   ends.
//! - A stream waiting on the slow disk (a cold 4 MiB file, slowfs at
//!   25 ms a read) never holds up a cached page on another stream of the
//!   same connection: the page's stream ends first, within 250 ms.

use std::fs;

use tests::docroot::pseudo_random_bytes;
use tests::h2::{goaway_code, h2_client, sha256_hex, INTERNAL_ERROR, NO_ERROR};
use tests::slow_disk::{SlowSite, SMALL_HTML};
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::{per_backend, procfs::poll_until, ServerProcess, TempDocroot, DEADLINE};

const PAGE: &[u8] = b"<!DOCTYPE html><title>w</title><p>windows</p>\n";

fn site(tag: &str) -> TempDocroot {
    let site = TempDocroot::new(tag);
    site.write("index.html", PAGE);
    site.write("big.bin", &pseudo_random_bytes(200_000, 9));
    site
}

fn a_small_window_is_never_overrun(backend: &str) {
    let site = site("h2-flow");
    let server = ServerProcess::serve(site.path(), backend);
    let seen = h2_client(
        &server,
        &site.outside(),
        "flow_control",
        &["/big.bin", "1000"],
    );
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["bytes"], 200_000, "{seen}");
    assert_eq!(
        seen["sha"],
        sha256_hex(&pseudo_random_bytes(200_000, 9)),
        "{seen}"
    );
    assert_eq!(seen["overflow"], false, "{seen}");
    assert!(
        seen["max_frame"].as_u64().is_some_and(|n| n <= 1000),
        "{seen}"
    );
}

fn the_h2_package_s_client_gets_every_stream_whole(backend: &str) {
    let site = site("h2-package");
    site.write("small.txt", b"small\n");
    let server = ServerProcess::serve(site.path(), backend);
    let paths = ["/big.bin", "/index.html", "/small.txt", "/big.bin"];
    let mut args = vec!["4096"];
    args.extend_from_slice(&paths);
    let seen = h2_client(&server, &site.outside(), "h2_package", &args);
    assert_eq!(seen["ended"], 4, "{seen}");
    assert_eq!(
        seen["statuses"],
        serde_json::json!(["200", "200", "200", "200"]),
        "{seen}"
    );
    let big = sha256_hex(&pseudo_random_bytes(200_000, 9));
    let expected = [big.clone(), sha256_hex(PAGE), sha256_hex(b"small\n"), big];
    assert_eq!(seen["shas"], serde_json::json!(expected), "{seen}");
}

fn a_window_held_at_zero_times_out_alone(backend: &str) {
    let site = site("h2-zero-window");
    let server = ServerProcess::serve_with(site.path(), backend, &["--send-timeout", "1"]);
    let seen = h2_client(
        &server,
        &site.outside(),
        "zero_window",
        &["/big.bin", "/index.html"],
    );
    assert_eq!(seen["held_headers"], 200, "{seen}");
    assert_eq!(seen["other"], 200, "{seen}");
    assert_eq!(seen["other_sha"], sha256_hex(PAGE), "{seen}");
    assert_eq!(seen["held_reset"], INTERNAL_ERROR, "{seen}");
    let held = seen["held_seconds"].as_f64().unwrap_or(0.0);
    assert!(held >= 0.9, "reset before --send-timeout: {seen}");
    assert_eq!(
        seen["after"], 200,
        "the connection takes a new stream: {seen}"
    );
    assert!(seen["goaway"].is_null(), "{seen}");
}

const WAIT_SCRIPT: &str = "#!/bin/sh\n\
printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
i=0\n\
while [ ! -e \"$RELEASE\" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n\
printf 'finished after the drain began\\n'\n";

fn a_drain_says_goaway_and_finishes_the_stream_in_flight(backend: &str) {
    let site = site("h2-drain");
    let release = site.outside().join("release");
    let script = WAIT_SCRIPT.replace("$RELEASE", release.to_str().expect("utf-8"));
    tests::cgi::write_executable(
        &site.path().join("cgi-bin/wait.cgi"),
        script.as_bytes(),
        0o755,
    );
    let mut server = ServerProcess::serve_with(site.path(), backend, &["--shutdown-timeout", "30"]);
    let pid = server.pid().to_string();
    let seen = h2_client(
        &server,
        &site.outside(),
        "drain",
        &["/cgi-bin/wait.cgi", &pid, release.to_str().expect("utf-8")],
    );
    assert_eq!(goaway_code(&seen), Some(NO_ERROR), "{seen}");
    assert_eq!(seen["goaway"][0], 1, "the last stream taken: {seen}");
    assert_eq!(seen["body"], "finished after the drain began\n", "{seen}");
    assert_eq!(seen["ended"], true, "{seen}");
    assert_eq!(seen["late_answered"], false, "{seen}");
    assert_eq!(seen["eof"], true, "{seen}");
    let status = server
        .wait_for_exit(DEADLINE)
        .expect("the server exits after the drain");
    assert!(status.success(), "{status}");
    let _ = fs::remove_file(release);
}

fn a_stream_on_the_slow_disk_holds_up_no_other(backend: &str) {
    let Some(site) = SlowSite::new(&format!("h2-{backend}"), &[4 << 20], 25) else {
        return;
    };
    let scratch = TempDocroot::new(&format!("h2-slow-{backend}"));
    let server = ServerProcess::serve_with(site.root(), backend, &["--status-path", STATUS_PATH]);
    let mut warm = server.connect();
    warm.get("/small.html").assert_status(200);
    let cold = &site.files()[0];
    let seen = h2_client(
        &server,
        &scratch.outside(),
        "slow_and_fast",
        &[&cold.url_path, "/small.html"],
    );
    assert_eq!(seen["fast_status"], 200, "{seen}");
    assert_eq!(seen["fast_sha"], sha256_hex(SMALL_HTML), "{seen}");
    assert_eq!(seen["slow_status"], 200, "{seen}");
    assert_eq!(seen["slow_sha"], sha256_hex(&cold.bytes), "{seen}");
    let (fast, slow) = (
        seen["fast_seconds"].as_f64().unwrap_or(f64::MAX),
        seen["slow_seconds"].as_f64().unwrap_or(0.0),
    );
    assert!(fast < 0.25, "the cached page took {fast} s: {seen}");
    assert!(fast < slow, "{seen}");
    // The cold bytes came from the helpers, not from a read in the loop.
    let mut by_helpers = 0;
    poll_until(DEADLINE, || {
        let status = status_json(&server, STATUS_PATH);
        by_helpers = status_number(&status, "/send/bytes_by_helpers");
        by_helpers >= cold.bytes.len() as u64
    });
    assert!(
        by_helpers >= cold.bytes.len() as u64,
        "{by_helpers} bytes by helpers"
    );
}

fn keep_alive_limits_apply_to_streams(backend: &str) {
    let site = site("h2-keepalive-limits");
    let server = ServerProcess::serve_with(site.path(), backend, &["--keepalive-requests", "5"]);
    let seen = h2_client(
        &server,
        &site.outside(),
        "sequential",
        &["/index.html", "8"],
    );
    assert_eq!(goaway_code(&seen), Some(NO_ERROR), "{seen}");
    assert_eq!(seen["goaway"][0], 9, "the fifth stream is the last: {seen}");
    assert_eq!(seen["answered"], 5, "{seen}");
    assert_eq!(seen["eof"], true, "{seen}");
}

fn an_answered_stream_left_open_holds_no_connection(backend: &str) {
    let site = site("h2-unfinished");
    let server = ServerProcess::serve_with(site.path(), backend, &["--keepalive-timeout", "1"]);
    let seen = h2_client(
        &server,
        &site.outside(),
        "unfinished_post",
        &["/index.html"],
    );
    assert_eq!(seen["status"], 405, "{seen}");
    assert_eq!(goaway_code(&seen), Some(NO_ERROR), "{seen}");
    assert_eq!(
        seen["eof"], true,
        "closed after --keepalive-timeout: {seen}"
    );
}

per_backend!(
    keep_alive_limits_apply_to_streams,
    an_answered_stream_left_open_holds_no_connection,
    a_small_window_is_never_overrun,
    the_h2_package_s_client_gets_every_stream_whole,
    a_window_held_at_zero_times_out_alone,
    a_drain_says_goaway_and_finishes_the_stream_in_flight,
    a_stream_on_the_slow_disk_holds_up_no_other,
);

//! The operator's command line: `server --help` names every option; operator
//! mistakes (missing root, port in use, missing helper binary, options out
//! of range or unparseable) fail before listening with a non-zero exit and
//! a clear message on stderr; the documented size forms are accepted; the
//! standalone `helper` reports a file, a miss and a refusal.

use std::net::TcpListener;
use std::path::Path;

use tests::{
    helper_bin, run_with_deadline, server_bin, site_docroot, RunOutput, ServerProcess, DEADLINE,
};

const OPTIONS: [&str; 11] = [
    "--listen",
    "--root",
    "--helpers",
    "--event-handler",
    "--cache-size",
    "--max-connections",
    "--access-log",
    "--keepalive-timeout",
    "--header-timeout",
    "--helper-bin",
    "--inline-max",
];

fn run_server(args: &[&str]) -> RunOutput {
    run_with_deadline(&server_bin(), args, DEADLINE)
}

/// Runs the server with a valid root and port plus `args`, expecting an
/// operator error; returns stderr.
fn expect_operator_error(args: &[&str]) -> String {
    let root = site_docroot()
        .root
        .to_str()
        .expect("UTF-8 temp path")
        .to_owned();
    let mut full = vec!["--listen", "127.0.0.1:0", "--root", &root];
    full.extend_from_slice(args);
    let output = run_server(&full);
    assert!(
        !output.status.success(),
        "server {full:?} should fail, exited {}",
        output.status
    );
    assert!(
        !output.stdout.contains("listening on"),
        "server {full:?} printed a listening line: {}",
        output.stdout
    );
    assert!(
        !output.stderr.trim().is_empty(),
        "server {full:?} failed without a message"
    );
    assert!(
        !output.stderr.contains("panicked"),
        "server {full:?} panicked instead of reporting: {}",
        output.stderr
    );
    output.stderr
}

#[test]
fn help_names_every_option() {
    let output = run_server(&["--help"]);
    assert!(output.status.success(), "--help exits 0: {}", output.stderr);
    for option in OPTIONS {
        assert!(
            output.stdout.contains(option),
            "--help does not mention {option}:\n{}",
            output.stdout
        );
    }
}

#[test]
fn missing_root_is_an_operator_error() {
    let missing = "/nonexistent/amped-test-root";
    let stderr = expect_operator_error(&["--root", missing]);
    assert!(
        stderr.contains(missing) || stderr.to_lowercase().contains("root"),
        "the message names the root: {stderr}"
    );
}

#[test]
fn port_in_use_is_an_operator_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local_addr").port();
    let listen = format!("127.0.0.1:{port}");
    let root = site_docroot().root.to_str().expect("UTF-8 path").to_owned();
    let output = run_server(&["--listen", &listen, "--root", &root]);
    assert!(!output.status.success(), "binding a taken port must fail");
    assert!(!output.stdout.contains("listening on"));
    let stderr = output.stderr.to_lowercase();
    assert!(
        stderr.contains(&port.to_string()) || stderr.contains("in use"),
        "the message says which address is taken: {}",
        output.stderr
    );
    assert!(!stderr.contains("panicked"), "{}", output.stderr);
    drop(taken);
}

#[test]
fn missing_helper_binary_is_an_operator_error() {
    let stderr = expect_operator_error(&["--helper-bin", "/nonexistent/helper"]);
    assert!(
        stderr.contains("/nonexistent/helper"),
        "the message names the missing helper: {stderr}"
    );
}

#[test]
fn helpers_out_of_range_is_an_operator_error() {
    expect_operator_error(&["--helpers", "0"]);
    expect_operator_error(&["--helpers", "65"]);
    expect_operator_error(&["--helpers", "two"]);
}

#[test]
fn bad_cache_size_is_an_operator_error() {
    expect_operator_error(&["--cache-size", "12Q"]);
    expect_operator_error(&["--cache-size", "-5M"]);
}

#[test]
fn bad_event_handler_is_an_operator_error() {
    expect_operator_error(&["--event-handler", "kqueue"]);
}

#[test]
fn documented_cache_size_forms_are_accepted() {
    let site = site_docroot();
    for size in ["1048576", "512K", "64M", "1G"] {
        let server = ServerProcess::serve_with(&site.root, "epoll", &["--cache-size", size]);
        let response = server.connect().get("/index.html");
        response.assert_status(200);
        assert_eq!(
            response.body,
            site.file("index.html"),
            "--cache-size {size}"
        );
    }
}

fn run_helper(path: &str) -> RunOutput {
    let root = &site_docroot().root;
    run_with_deadline(
        &helper_bin(),
        &[
            "--root".as_ref(),
            root.as_os_str(),
            Path::new(path).as_os_str(),
        ],
        DEADLINE,
    )
}

#[test]
fn standalone_helper_reports_a_file() {
    let output = run_helper("/index.html");
    assert!(
        output.status.success(),
        "helper exited {}: {}",
        output.status,
        output.stderr
    );
    let size = site_docroot().file("index.html").len();
    assert!(
        output
            .stdout
            .lines()
            .any(|l| l.trim() == "kind: regular file"),
        "no `kind: regular file` line:\n{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .lines()
            .any(|l| l.trim() == format!("size: {size} bytes")),
        "no `size: {size} bytes` line:\n{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("modified:")),
        "no `modified:` line:\n{}",
        output.stdout
    );
}

#[test]
fn standalone_helper_reports_not_found() {
    let output = run_helper("/nope.html");
    assert!(!output.status.success(), "a miss exits non-zero");
    assert!(
        output.combined().contains("not found: /nope.html"),
        "the report says not found:\n{}",
        output.combined()
    );
}

#[test]
fn standalone_helper_refuses_a_symlink_out_of_the_root() {
    let output = run_helper("/escape.txt");
    assert!(!output.status.success(), "a refusal exits non-zero");
    assert!(
        output.combined().contains("forbidden: /escape.txt"),
        "the report says forbidden:\n{}",
        output.combined()
    );
    assert!(!output.combined().contains(tests::docroot::OUTSIDE_SECRET));
}

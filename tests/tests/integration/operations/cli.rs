//! The operator's command line: `server --help` names every option of
//! docs/options.md's option table; operator mistakes fail before listening with
//! exactly one line on stderr and the documented exit status (2 for a
//! command line that does not parse: an unknown option, a value out of
//! range; 1 for a setting the machine refuses: a missing root, a port in
//! use, a missing helper or runner binary, a cache below 64K); the
//! documented size forms are accepted; the standalone `helper` reports a
//! file, a miss and a refusal.

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use tests::{
    helper_bin, run_with_deadline, server_bin, site_docroot, workspace_root, RunOutput,
    ServerProcess, DEADLINE,
};

/// Exit status for a command line that does not parse.
const PARSE_ERROR: i32 = 2;
/// Exit status for a configuration the machine refuses.
const REFUSED: i32 = 1;

/// The `--name` of every row of docs/options.md's option table (the
/// rows that start with `` | `--``).
fn documented_options() -> Vec<String> {
    let path = workspace_root().join("docs/options.md");
    let table =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let options: Vec<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `--"))
        .map(tests::options::option_named)
        .collect();
    assert!(
        options.len() >= 15,
        "docs/options.md's option table has only {} rows: {options:?}",
        options.len()
    );
    options
}

fn run_server(args: &[&str]) -> RunOutput {
    run_with_deadline(&server_bin(), args, DEADLINE)
}

/// The site root as a string, for command lines.
fn site_root() -> String {
    site_docroot()
        .root
        .to_str()
        .expect("UTF-8 temp path")
        .to_owned()
}

/// Runs `server args...` exactly as given and expects it to fail before
/// listening with exit status `code` and exactly one line on stderr, which
/// it returns.
fn expect_exit(args: &[&str], code: i32) -> String {
    let output = run_server(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "server {args:?} should exit {code}, exited {}; stderr: {:?}",
        output.status,
        output.stderr
    );
    assert!(
        !output.stdout.contains("listening on"),
        "server {args:?} printed a listening line: {}",
        output.stdout
    );
    assert_eq!(
        output.stderr.lines().count(),
        1,
        "server {args:?}: exactly one line on stderr, got {:?}",
        output.stderr
    );
    assert!(
        !output.stderr.trim().is_empty(),
        "server {args:?} failed with an empty line"
    );
    assert!(
        !output.stderr.contains("panicked"),
        "server {args:?} panicked instead of reporting: {}",
        output.stderr
    );
    output.stderr
}

/// Runs the server with a valid root and port plus `args`, expecting exit
/// status `code` and one line on stderr; returns stderr.
fn expect_operator_error(args: &[&str], code: i32) -> String {
    let root = site_root();
    let mut full = vec!["--listen", "127.0.0.1:0", "--root", &root];
    full.extend_from_slice(args);
    expect_exit(&full, code)
}

#[test]
fn help_names_every_option() {
    let output = run_server(&["--help"]);
    assert!(output.status.success(), "--help exits 0: {}", output.stderr);
    for option in documented_options() {
        assert!(
            output.stdout.contains(&option),
            "--help does not mention {option} (from docs/options.md's option table):\n{}",
            output.stdout
        );
    }
}

/// The other way round: every option `--help` lists has its row in
/// docs/options.md (but `--help` and `--version` themselves).
#[test]
fn the_option_table_lists_every_option() {
    let documented = documented_options();
    let missing: Vec<String> = tests::options::server_long_options()
        .into_iter()
        .filter(|o| o != "--help" && o != "--version")
        .filter(|o| !documented.contains(o))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/options.md has no row for {missing:?}"
    );
}

#[test]
fn missing_root_is_an_operator_error() {
    let missing = "/nonexistent/amped-test-root";
    let stderr = expect_exit(&["--listen", "127.0.0.1:0", "--root", missing], REFUSED);
    assert!(
        stderr.contains(missing),
        "the message names the missing root: {stderr}"
    );
}

#[test]
fn port_in_use_is_an_operator_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local_addr").port();
    let listen = format!("127.0.0.1:{port}");
    let root = site_root();
    let stderr = expect_exit(&["--listen", &listen, "--root", &root], REFUSED);
    assert!(
        stderr.contains(&port.to_string()),
        "the message says which address is taken: {stderr}"
    );
    drop(taken);
}

#[test]
fn missing_helper_binary_is_an_operator_error() {
    let stderr = expect_operator_error(&["--helper-bin", "/nonexistent/helper"], REFUSED);
    assert!(
        stderr.contains("/nonexistent/helper"),
        "the message names the missing helper: {stderr}"
    );
}

#[test]
fn missing_cgi_runner_binary_is_an_operator_error() {
    let stderr = expect_operator_error(&["--cgi-runner-bin", "/nonexistent/cgi-runner"], REFUSED);
    assert!(
        stderr.contains("/nonexistent/cgi-runner"),
        "the message names the missing runner: {stderr}"
    );
}

#[test]
fn helpers_out_of_range_is_an_operator_error() {
    for value in ["0", "65", "two"] {
        let stderr = expect_operator_error(&["--helpers", value], PARSE_ERROR);
        assert!(
            stderr.contains("--helpers"),
            "--helpers {value}: the message names the option: {stderr}"
        );
    }
}

#[test]
fn connection_limits_out_of_range_are_operator_errors() {
    for (option, value) in [
        ("--keepalive-requests", "0"),
        ("--keepalive-requests", "many"),
        ("--keepalive-time", "0"),
        ("--discard-timeout", "0"),
        ("--discard-timeout", "3601"),
    ] {
        let stderr = expect_operator_error(&[option, value], PARSE_ERROR);
        assert!(
            stderr.contains(option),
            "{option} {value}: the message names the option: {stderr}"
        );
    }
}

#[test]
fn bad_cache_size_is_an_operator_error() {
    expect_operator_error(&["--cache-size", "12Q"], PARSE_ERROR);
    expect_operator_error(&["--cache-size=-5M"], PARSE_ERROR);
    let stderr = expect_operator_error(&["--cache-size", "32K"], REFUSED);
    assert!(
        stderr.contains("at least 64K"),
        "--cache-size 32K: the message gives the minimum: {stderr}"
    );
}

#[test]
fn bad_event_handler_is_an_operator_error() {
    let stderr = expect_operator_error(&["--event-handler", "kqueue"], PARSE_ERROR);
    assert!(stderr.contains("kqueue"), "names the bad value: {stderr}");
}

#[test]
fn unknown_option_is_an_operator_error() {
    let stderr = expect_operator_error(&["--no-such-option"], PARSE_ERROR);
    assert!(
        stderr.contains("--no-such-option"),
        "names the unknown option: {stderr}"
    );
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

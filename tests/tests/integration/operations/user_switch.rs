//! `--user NAME`: a server started as root binds its port, then it and
//! every child it starts (the two helpers, the cgi-runner, and the CGI
//! scripts) run as that user; an unknown user is an operator error.
//!
//! These tests need root (CI runs as root). Run as another user they fail
//! with a clear message, unless `AMPED_TESTS_NOT_ROOT=1` says that skipping
//! them is intended.
//!
//! The clone may sit where `nobody` cannot go (a home directory of mode
//! 700, a `mktemp -d` folder), so the test copies the three binaries and
//! the document root into a directory of the temp dir that everyone may
//! search, and runs them from there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tests::binaries::cgi_runner_bin;
use tests::cgi::set_mode;
use tests::procfs::{children_of, wait_for_live_children};
use tests::{helper_bin, server_bin, ServerProcess, TempDocroot};

/// The gid of `nobody`'s group (`nogroup`) on Debian.
const NOGROUP_GID: u32 = 65534;

/// The uid of `nobody` on Debian.
const NOBODY_UID: u32 = 65534;

/// The four uids (real, effective, saved, filesystem) of a process, or
/// `None` if it is gone.
fn uids(pid: i32) -> Option<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().ok())
        .collect()
}

/// Copies the server, helper and cgi-runner binaries into `dir` (created
/// with mode 755) and returns the copied server.
fn binaries_in(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    set_mode(dir, 0o755);
    for bin in [server_bin(), helper_bin(), cgi_runner_bin()] {
        let name = bin.file_name().expect("a binary's file name");
        let copy = dir.join(name);
        let copied = {
            let _guard = tests::binaries::fork_lock();
            fs::copy(&bin, &copy)
        };
        copied.unwrap_or_else(|e| panic!("copy {} to {}: {e}", bin.display(), copy.display()));
        set_mode(&copy, 0o755);
    }
    dir.join("server")
}

/// True when the tests run as root. Otherwise panics, unless
/// `AMPED_TESTS_NOT_ROOT=1` asks to skip (then prints why and returns
/// false).
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("AMPED_TESTS_NOT_ROOT").as_deref() == Ok("1") {
        eprintln!("skipped: --user needs root (AMPED_TESTS_NOT_ROOT=1)");
        return false;
    }
    panic!(
        "the --user tests need root; run the suite as root, or set \
         AMPED_TESTS_NOT_ROOT=1 to skip them knowingly"
    );
}

/// Whether `nobody` can reach `path` (every directory above it searchable
/// by others).
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

#[test]
fn server_and_children_run_as_the_given_user() {
    if !running_as_root() {
        return;
    }
    let docroot = TempDocroot::with_www("user-switch");
    for dir in [docroot.path().parent().expect("temp dir"), docroot.path()] {
        set_mode(dir, 0o755);
    }
    let bin = binaries_in(&docroot.outside().join("bin"));
    assert!(
        reachable_by_others(&bin),
        "nobody cannot reach {}: the temp dir ({}) must be searchable by \
         others (set TMPDIR to one that is)",
        bin.display(),
        std::env::temp_dir().display()
    );
    let uid_script = docroot.write(
        "cgi-bin/uid.cgi",
        b"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nid -u\ngrep '^Groups:' /proc/self/status\n",
    );
    set_mode(&uid_script, 0o755);
    let root = docroot.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start_binary(
        &bin,
        "127.0.0.1:0",
        &["--root", root, "--user", "nobody"],
        &[],
    );

    let page = tests::http_client::fetch(server.addr(), "/");
    page.assert_status(200);
    let cgi = server.connect().get_dechunked("/cgi-bin/hello.cgi");
    cgi.assert_status(200);
    assert!(cgi.body_text().contains("Hello from a CGI script"));
    let uid = server.connect().get_dechunked("/cgi-bin/uid.cgi");
    uid.assert_status(200);
    let text = uid.body_text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(NOBODY_UID.to_string().as_str()),
        "the CGI script's uid"
    );
    // Supplementary groups are dropped (docs/options.md): only the user's own
    // group is left, none of root's.
    let groups: Vec<&str> = lines
        .next()
        .and_then(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        groups,
        [NOGROUP_GID.to_string()],
        "the CGI script's groups: {text}"
    );

    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");
    assert_eq!(
        uids(pid),
        Some(vec![NOBODY_UID; 4]),
        "the server runs as nobody"
    );
    // The children were all started once the pages above were served; the
    // two helpers and the runner stay up.
    let helpers = wait_for_live_children(pid, "helper", 2);
    let runners = wait_for_live_children(pid, "cgi-runner", 1);
    for child in helpers.iter().chain(&runners) {
        assert_eq!(
            uids(*child),
            Some(vec![NOBODY_UID; 4]),
            "child {child} runs as nobody"
        );
    }
    // Nothing else the server started runs as anyone else either (a child
    // that exits meanwhile has no uid left to check).
    for child in children_of(pid).into_iter().filter(|c| c.is_live()) {
        if let Some(ids) = uids(child.pid) {
            assert_eq!(
                ids,
                vec![NOBODY_UID; 4],
                "child {} ({}) runs as nobody",
                child.pid,
                child.comm
            );
        }
    }
}

#[test]
fn an_unknown_user_is_an_operator_error() {
    if !running_as_root() {
        return;
    }
    let docroot = TempDocroot::with_www("user-unknown");
    let root = docroot.path().to_str().expect("utf-8 path");
    let out = tests::run_with_deadline(
        &server_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--root",
            root,
            "--user",
            "no-such-user-amped",
        ],
        tests::DEADLINE,
    );
    assert_eq!(out.status.code(), Some(1), "exit status {:?}", out.status);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(
        out.stderr.contains("no such user: no-such-user-amped"),
        "stderr: {}",
        out.stderr
    );
}

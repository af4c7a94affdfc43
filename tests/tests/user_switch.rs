//! `--user NAME`: a server started as root binds its port, then it and
//! every child it starts (helpers, cgi-runner, and so the scripts) run as
//! that user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tests::procfs::children_of;
use tests::{server_bin, ServerProcess, TempDocroot};

/// The uid of `nobody` on Debian.
const NOBODY_UID: u32 = 65534;

/// The four uids (real, effective, saved, filesystem) of a process.
fn uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("a uid"))
        .collect()
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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: --user needs the tests to run as root");
        return;
    }
    let bin = server_bin();
    if !reachable_by_others(&bin) {
        eprintln!("skipped: nobody cannot reach {}", bin.display());
        return;
    }
    let docroot = TempDocroot::with_www("user-switch");
    for dir in [docroot.path().parent().expect("temp dir"), docroot.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let root = docroot.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--root", root, "--user", "nobody"]);

    let page = tests::http_client::fetch(server.addr(), "/");
    page.assert_status(200);
    let cgi = server.connect().get_dechunked("/cgi-bin/hello.cgi");
    cgi.assert_status(200);
    assert!(cgi.body_text().contains("Hello from a CGI script"));

    let pid = server.pid() as i32;
    assert_eq!(uids(pid), vec![NOBODY_UID; 4], "the server runs as nobody");
    let children = children_of(pid);
    assert!(
        children.len() >= 3,
        "two helpers and a cgi-runner, got {}",
        children.len()
    );
    for child in children {
        assert_eq!(
            uids(child.pid),
            vec![NOBODY_UID; 4],
            "child {} runs as nobody",
            child.pid
        );
    }
}

#[test]
fn an_unknown_user_is_an_operator_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: --user needs the tests to run as root");
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
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert!(
        out.stderr.contains("no such user: no-such-user-amped"),
        "stderr: {}",
        out.stderr
    );
}

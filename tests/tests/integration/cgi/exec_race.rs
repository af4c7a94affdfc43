//! A script runs as the very file the runner checked, even when its path
//! changes between the check and the start
//! (`AMPED_TEST_RUNNER_HOLD_AFTER_CHECK` holds the runner there). The
//! script sits in a directory anyone may write (mode 0777): there the
//! runner executes it through the checked descriptor, and a directory
//! swapped for a link to a script outside the root in that window does
//! not run (by its path, it did), and the script's working directory is
//! the one it was checked in. In a directory only its owner may write,
//! a script is executed by its real path, so `$0` is that path.

use std::fs;
use std::path::Path;
use std::thread;

use tests::cgi::{set_mode, CgiSite, TEXT_HEAD};
use tests::procfs::poll_until;
use tests::{ServerProcess, DEADLINE};

const HOOK: &str = "AMPED_TEST_RUNNER_HOLD_AFTER_CHECK";

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn a_path_changed_after_the_check_does_not_change_what_runs() {
    let site = CgiSite::new("exec-race");
    site.script("up/x.cgi", &format!("{TEXT_HEAD}\necho checked\npwd -P\n"));
    set_mode(&site.root().join("up"), 0o777);
    let elsewhere = site.outside().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("mkdir elsewhere");
    tests::cgi::write_executable(
        &elsewhere.join("x.cgi"),
        format!("#!/bin/sh\n{TEXT_HEAD}\necho unchecked\n").as_bytes(),
        0o755,
    );
    let release = site.outside().join("release");
    let reached = with_suffix(&release, ".reached");
    let hook_value = release.to_string_lossy().into_owned();
    let server = ServerProcess::serve_with_env(site.root(), "epoll", &[], &[(HOOK, &hook_value)]);
    let addr = server.addr();
    let request =
        thread::spawn(move || tests::Connection::connect(addr).get_dechunked("/up/x.cgi"));
    assert!(
        poll_until(DEADLINE, || reached.exists()),
        "the runner never reached the hook:\n{}",
        server.stderr_text()
    );
    // Checked; now the directory is swapped for a link out of the root.
    let up = site.root().join("up");
    fs::rename(&up, site.root().join("up-moved")).expect("move up/ away");
    std::os::unix::fs::symlink(&elsewhere, &up).expect("link up -> elsewhere");
    fs::write(&release, b"").expect("release the runner");
    let response = request.join().expect("the request");
    response.assert_status(200);
    // It ran in the folder it was checked in, now moved: never outside.
    let moved = site.canonical_root().join("up-moved");
    assert_eq!(
        response.body_text(),
        format!("checked\n{}\n", moved.display()),
        "the script that ran, and where"
    );
}

#[test]
fn a_script_in_a_directory_only_its_owner_writes_sees_its_real_path() {
    let site = CgiSite::new("exec-path");
    site.script("cgi-bin/me.cgi", &format!("{TEXT_HEAD}\necho \"$0\"\n"));
    set_mode(&site.root().join("cgi-bin"), 0o755);
    let server = ServerProcess::serve(site.root(), "epoll");
    let response = server.connect().get_dechunked("/cgi-bin/me.cgi");
    response.assert_status(200);
    let real = site.canonical_root().join("cgi-bin/me.cgi");
    // (The folders above the site are the machine's temporary folder,
    // sticky, with the site's folder this user's own: nobody else may
    // rename anything on the path.)
    assert_eq!(response.body_text(), format!("{}\n", real.display()), "$0");
}

//! The server at its descriptor limit, under each event backend: a
//! helper's answer that carries a file's descriptor arrives without it
//! (the kernel has no slot to put it in, MSG_CTRUNC). That is the
//! server's shortage, not the helper's fault: the client gets 503 with
//! `Retry-After`, no helper is killed, and once descriptors are free
//! again the file is served (the failure was not cached). And a limit
//! too low for the options is told at start-up and by `--check-config`.

use std::fs;
use std::path::Path;
use std::process::Command;

use tests::docroot::pseudo_random_bytes;
use tests::procfs::{live_children_named, poll_until, wait_for_live_children};
use tests::{
    assert_bytes_eq, per_backend, run_with_deadline, server_bin, Connection, RunOutput,
    ServerProcess, TempDocroot, DEADLINE,
};

/// The server's open descriptors.
fn open_fds(pid: i32) -> Vec<i32> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `pid`'s soft RLIMIT_NOFILE; returns the old one.
fn set_soft_nofile(pid: i32, soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads into `old`.
    let got = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(got, 0, "prlimit read: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are to valid rlimit values.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit set: {}", std::io::Error::last_os_error());
    old
}

fn a_lost_descriptor_is_a_503_not_a_dead_helper(backend: &str) {
    let docroot = TempDocroot::new(&format!("fd-limit-{backend}"));
    let big = pseudo_random_bytes(256 * 1024, 5);
    docroot.write("big.bin", &big);
    docroot.write("small.html", b"small\n");
    let server = ServerProcess::serve_with(docroot.path(), backend, &["--helpers", "2"]);
    let pid = i32::try_from(server.pid()).expect("pid fits");
    let helpers = wait_for_live_children(pid, "helper", 2);
    let mut conn = server.connect();
    conn.get("/small.html").assert_status(200);

    // No free slot below the limit: fill the holes with connections.
    let fds = open_fds(pid);
    let limit = fds.iter().max().copied().unwrap_or(0) + 1;
    let old = set_soft_nofile(pid, limit as u64);
    let fillers: Vec<Connection> = (0..(limit as usize - fds.len() + 2))
        .map(|_| server.connect())
        .collect();
    assert!(
        poll_until(DEADLINE, || open_fds(pid).len() == limit as usize),
        "the server's descriptor table did not fill up to {limit}: {:?}",
        open_fds(pid)
    );

    let response = conn.get("/big.bin");
    response.assert_error_page(503);
    assert_eq!(response.header("Retry-After"), Some("1"));
    assert!(
        poll_until(DEADLINE, || server
            .stderr_text()
            .contains("no descriptor to spare")),
        "the loss was not logged:\n{}",
        server.stderr_text()
    );
    let stderr = server.stderr_text();
    let mut alive = live_children_named(pid, "helper");
    alive.sort_unstable();
    let mut before = helpers.clone();
    before.sort_unstable();
    assert_eq!(alive, before, "a helper was replaced:\n{stderr}");

    // Room again: the file is served, byte-exact.
    set_soft_nofile(pid, old.rlim_cur);
    drop(fillers);
    let response = conn.get("/big.bin");
    response.assert_status(200);
    assert_bytes_eq("/big.bin", &response.body, &big);
}

per_backend!(a_lost_descriptor_is_a_503_not_a_dead_helper);

/// A shell that lowers the soft and hard descriptor limits to `limit`,
/// then runs the server with what follows.
fn under_limit(limit: u32) -> String {
    format!("ulimit -Sn {limit} && ulimit -Hn {limit} && exec \"$0\" \"$@\"")
}

/// `--check-config` for `root` with `options` under a limit of `limit`
/// descriptors.
fn check_under_limit(root: &Path, limit: u32, options: &[&str]) -> RunOutput {
    let shell = under_limit(limit);
    let server = server_bin();
    let server = server.to_str().expect("UTF-8 path");
    let root = root.to_str().expect("UTF-8 path");
    let mut args = vec![
        "-c",
        shell.as_str(),
        server,
        "--check-config",
        "--root",
        root,
    ];
    args.extend_from_slice(options);
    run_with_deadline(Path::new("/bin/sh"), &args, DEADLINE)
}

#[test]
fn a_limit_too_low_for_the_options_is_told() {
    const TOLD: &str = "the descriptor limit (1024) is below what --max-connections (2000), \
                        --cache-files (100) and --cgi-max-procs (64, two pipes each) may use";
    let docroot = TempDocroot::new("fd-limit-told");
    docroot.write("a.html", b"a\n");
    // --check-config: a warning, and the configuration is still fine.
    let short = check_under_limit(
        docroot.path(),
        1024,
        &["--max-connections", "2000", "--cache-files", "100"],
    );
    assert!(short.status.success(), "{}", short.combined());
    assert!(short.stderr.contains(TOLD), "{}", short.combined());
    assert!(short.stderr.contains("ulimit -n"), "{}", short.combined());
    let enough = check_under_limit(
        docroot.path(),
        1024,
        &["--max-connections", "500", "--cache-files", "100"],
    );
    assert!(enough.status.success(), "{}", enough.combined());
    assert!(
        !enough.stderr.contains("descriptor limit"),
        "{}",
        enough.combined()
    );

    // A server started so says it in its error log, and serves.
    let error_log = docroot.path().join("error.log");
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(under_limit(1024))
        .arg(server_bin())
        .arg("--root")
        .arg(docroot.path())
        .args(["--listen", "127.0.0.1:0", "--access-log", "off"])
        .args(["--max-connections", "2000", "--cache-files", "100"])
        .arg("--error-log")
        .arg(&error_log);
    let server = ServerProcess::start_command(command);
    server.connect().get("/a.html").assert_status(200);
    let logged = || fs::read_to_string(&error_log).unwrap_or_default();
    assert!(
        poll_until(DEADLINE, || logged().contains(TOLD)),
        "error log: {}\nstderr: {}",
        logged(),
        server.stderr_text()
    );
}

//! Descriptors the server was started with (a shell's open files) reach
//! none of its children, under each event backend: the server is started
//! by a shell (bash: dash takes single-digit descriptors only) holding a file open at descriptors 10 and 251, as the
//! review's shell did, and neither the helpers, the cgi-runner nor a CGI
//! script holds that file.

use std::fs;
use std::path::Path;
use std::process::Command;

use tests::cgi::{CgiSite, TEXT_HEAD};
use tests::procfs::wait_for_live_children;
use tests::{per_backend, server_bin, ServerProcess};

/// The descriptors of `pid` that are open on `file`.
fn descriptors_on(pid: i32, file: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| fs::read_link(e.path()).is_ok_and(|target| target == file))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn inherited_descriptors_reach_no_child(backend: &str) {
    let site = CgiSite::new("inherited-fds");
    let held = site.outside().join("held-by-the-shell");
    fs::write(&held, b"the shell's file").expect("write the held file");
    // Each line: a descriptor of the script and what it is open on.
    site.script(
        "cgi-bin/fds.cgi",
        &format!(
            "{TEXT_HEAD}\nfor f in /proc/$$/fd/*; do echo \"${{f##*/}} $(readlink \"$f\")\"; done\n"
        ),
    );
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"exec "$0" "$@" 10<"$HELD" 251<"$HELD""#)
        .arg(server_bin())
        .args(["--listen", "127.0.0.1:0", "--access-log", "off", "--root"])
        .arg(site.root())
        .args(["--event-handler", backend])
        .env("HELD", &held);
    let server = ServerProcess::start_command(command);
    assert_eq!(
        descriptors_on(server.pid() as i32, &held),
        ["10", "251"],
        "the server itself was started holding the file at 10 and 251"
    );

    let response = server.connect().get_dechunked("/cgi-bin/fds.cgi");
    assert_eq!(response.status, 200, "{}", response.body_text());
    let listing = response.body_text();
    let leaked: Vec<&str> = listing
        .lines()
        .filter(|line| line.ends_with(&*held.to_string_lossy()))
        .collect();
    assert!(
        leaked.is_empty(),
        "the script inherited the shell's file: {leaked:?}\n{listing}"
    );
    assert!(
        listing.lines().any(|l| l.starts_with("1 ")),
        "stdout is listed: {listing}"
    );

    let pid = server.pid() as i32;
    let children = wait_for_live_children(pid, "helper", 2)
        .into_iter()
        .chain(wait_for_live_children(pid, "cgi-runner", 1));
    for child in children {
        assert_eq!(
            descriptors_on(child, &held),
            Vec::<String>::new(),
            "child {child} holds the shell's file"
        );
    }
}

per_backend!(inherited_descriptors_reach_no_child);

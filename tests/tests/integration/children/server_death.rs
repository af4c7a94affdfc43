//! `kill -9` of the server, under each event backend, takes its helpers,
//! its runner and a running script's process group with it within a
//! second.

use std::thread;
use std::time::{Duration, Instant};

use tests::http_client::request_bytes;
use tests::procfs::{
    children_of, cmdline, is_alive, live_group_members, poll_until, proc_stat, send_signal,
    wait_for_live_children, KillOnDrop,
};
use tests::{per_backend, ServerProcess, TempDocroot, DEADLINE};

/// The script's processes: the runner's live children and everyone in
/// their process groups (each script leads its own group).
fn script_processes(runner: i32) -> Vec<(i32, String)> {
    let mut found: Vec<(i32, String)> = Vec::new();
    for child in children_of(runner).into_iter().filter(|p| p.is_live()) {
        for member in live_group_members(child.pid) {
            found.push((member.pid, member.comm));
        }
        found.push((child.pid, child.comm));
    }
    found.sort_unstable();
    found.dedup();
    found
}

fn kill_9_of_the_server_leaves_no_child_behind(backend: &str) {
    let docroot = TempDocroot::new(&format!("kill9-{backend}"));
    let marker = docroot.outside().join("script-started");
    let sleepy = format!(
        "#!/bin/sh\n: > '{}'\nsleep 30\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate\\n'\n",
        marker.display()
    );
    let script = docroot.path().join("cgi-bin/sleepy.cgi");
    tests::cgi::write_executable(&script, sleepy.as_bytes(), 0o755);
    let server = ServerProcess::serve(docroot.path(), backend);
    let pid = server.pid_t();

    // A script in flight.
    let mut conn = server.connect();
    conn.send(request_bytes("GET", "/cgi-bin/sleepy.cgi", &[]).as_bytes());
    assert!(
        poll_until(DEADLINE, || marker.exists()),
        "the CGI script did not start"
    );
    let helpers = wait_for_live_children(pid, "helper", 2);
    let runners = wait_for_live_children(pid, "cgi-runner", 1);
    let mut scripts = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            scripts = script_processes(runners[0]);
            scripts.iter().any(|(_, comm)| comm == "sleep")
        }),
        "no `sleep` under the runner: {scripts:?}"
    );
    let watched: Vec<(i32, String)> = helpers
        .iter()
        .map(|&p| (p, "helper".to_owned()))
        .chain(runners.iter().map(|&p| (p, "cgi-runner".to_owned())))
        .chain(scripts.iter().cloned())
        .collect();
    // Whatever survives the test is killed at the end, by PID.
    let _cleanup = KillOnDrop(watched.iter().map(|(p, _)| *p).collect());

    // Timed from just before the kill; checked every 5 ms, so the time
    // taken is known to within a scan of /proc. On an idle machine they are
    // gone within a few milliseconds; the bound leaves room for a loaded
    // one, where the dying processes wait for a CPU.
    let killed = Instant::now();
    assert!(send_signal(pid, libc::SIGKILL), "kill -9 the server");
    let mut all_gone_after = None;
    while killed.elapsed() < KILL_9_WITHIN {
        if watched.iter().all(|&(p, _)| !is_alive(p)) {
            all_gone_after = Some(killed.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let survivors: Vec<String> = watched
        .iter()
        .filter(|&&(p, _)| is_alive(p))
        .map(|(p, comm)| {
            let ppid = proc_stat(*p).map_or(0, |s| s.ppid);
            format!("{p} {comm} (parent {ppid}): {}", cmdline(*p))
        })
        .collect();
    assert!(
        survivors.is_empty(),
        "{KILL_9_WITHIN:?} after kill -9 of the server these are still alive:\n{}",
        survivors.join("\n")
    );
    if let Some(gone_after) = all_gone_after {
        eprintln!("{backend}: {watched:?} all gone {gone_after:?} after kill -9 of the server");
    }
}

/// How long a killed server's children may take to die with it.
const KILL_9_WITHIN: Duration = Duration::from_secs(5);

per_backend!(kill_9_of_the_server_leaves_no_child_behind);

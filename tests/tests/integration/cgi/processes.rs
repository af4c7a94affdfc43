//! CGI script processes, under each event backend: an endless loop (alone,
//! and one that also starts a looping subshell and a `sleep`) is killed at
//! `--cgi-timeout 3` with a 504 to the client, and then nothing of its
//! process group (or with its environment) is left; a script whose
//! background child keeps stdout open still gets its response finished
//! long before that child would end; and with `--cgi-max-procs 1`, a second script while one
//! runs gets 503 with Retry-After, and scripts run again once it ends.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use tests::cgi::{wait_for_file, CgiSite, Reaper, TEXT_HEAD};
use tests::procfs::{group_members, poll_until, proc_stat, processes_with_environ, ProcStat};
use tests::{per_backend, ServerProcess, DEADLINE};

/// The endless scripts' time limit, in seconds. They must have written
/// their pid files before it (milliseconds of work), so 3 s leaves room
/// for a loaded machine while the two loops do not burn CPU for long.
const LIMIT_SECS: u64 = 3;
/// The 504s must come within this of the requests: the limit plus 17 s
/// for killing and answering on a loaded 2-core machine (below the
/// client's 30 s read timeout, so that this bound is what fails).
const LIMIT_ANSWERED_MAX: Duration = Duration::from_secs(20);
/// How long the background child of bg.cgi would hold stdout: far
/// beyond [`BG_ANSWERED_MAX`].
const BG_SLEEP_SECS: u64 = 600;
/// bg.cgi's response must be complete within this: the runner's 2 s grace
/// period after the script's exit plus generous room for a loaded
/// machine, far short of the background child's own end and below the
/// client's 30 s read timeout (so that this bound is what fails).
const BG_ANSWERED_MAX: Duration = Duration::from_secs(20);

fn read_pid(path: &Path) -> i32 {
    wait_for_file(path);
    let mut text = String::new();
    // The script may not have finished writing the line yet.
    let complete = poll_until(DEADLINE, || {
        text = fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    assert!(complete, "{} never held a full line", path.display());
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} holds no pid: {text:?}", path.display()))
}

/// Waits until no process is left in group `pgid` nor carries `marker` in
/// its environment.
fn assert_all_gone(pgid: i32, marker: &str, what: &str) {
    let mut left = Vec::new();
    let gone = poll_until(DEADLINE, || {
        left = group_members(pgid);
        left.extend(processes_with_environ(marker));
        left.is_empty()
    });
    assert!(
        gone,
        "{what}: processes still there {DEADLINE:?} after the response: {left:#?}"
    );
}

fn endless_scripts_are_killed_with_504(backend: &str) {
    let site = CgiSite::new("cgi-timeout");
    let reaper = Reaper::new(&site);
    let spin_pid = site.outside().join("spin.pid");
    let spawner_pid = site.outside().join("spawner.pid");
    let spawner_kids = site.outside().join("spawner.kids");
    site.script(
        "cgi-bin/spin.cgi",
        &format!("echo $$ > '{}'\nwhile :; do :; done\n", spin_pid.display()),
    );
    site.script(
        "cgi-bin/spawner.cgi",
        &format!(
            "(while :; do :; done) &\necho $! > '{kids}'\nsleep 1000 &\necho $! >> '{kids}'\n\
             echo $$ > '{pid}'\nwhile :; do :; done\n",
            kids = spawner_kids.display(),
            pid = spawner_pid.display()
        ),
    );
    let limit = LIMIT_SECS.to_string();
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", &limit]);

    let started = Instant::now();
    let mut spin = server.connect();
    spin.send(b"GET /cgi-bin/spin.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut spawner = server.connect();
    spawner.send(b"GET /cgi-bin/spawner.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let spin_pgid = read_pid(&spin_pid);
    let spawner_pgid = read_pid(&spawner_pid);
    // spawner.cgi wrote its children's pids before its own.
    let kids: Vec<i32> = fs::read_to_string(&spawner_kids)
        .expect("read spawner.kids")
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    assert_eq!(kids.len(), 2, "spawner.cgi's children: {kids:?}");

    for (name, conn) in [("spin.cgi", &mut spin), ("spawner.cgi", &mut spawner)] {
        let response = conn.read_response_dechunked();
        response.assert_status(504);
        let waited = started.elapsed();
        // Not before the limit (100 ms for timer granularity).
        assert!(
            waited >= Duration::from_secs(LIMIT_SECS) - Duration::from_millis(100),
            "{name}: 504 after {waited:?}, before the {LIMIT_SECS} s limit"
        );
    }
    assert!(
        started.elapsed() < LIMIT_ANSWERED_MAX,
        "the 504s took {:?} with --cgi-timeout {LIMIT_SECS}",
        started.elapsed()
    );
    assert_all_gone(spin_pgid, reaper.marker(), "spin.cgi");
    assert_all_gone(spawner_pgid, reaper.marker(), "spawner.cgi");
    for kid in kids {
        // Gone, or its pid already reused by a process that is not the
        // spawner's (another group, without the site's environment).
        let gone = |p: &ProcStat| {
            p.pgid != spawner_pgid
                && !processes_with_environ(reaper.marker())
                    .iter()
                    .any(|q| q.pid == p.pid)
        };
        assert!(
            proc_stat(kid).is_none_or(|p| gone(&p)),
            "spawner.cgi's child {kid} is still there: {:?}",
            proc_stat(kid)
        );
    }

    // The server still runs scripts afterwards.
    site.script("cgi-bin/hello.cgi", &format!("{TEXT_HEAD}\necho hello\n"));
    let response = server.connect().get_dechunked("/cgi-bin/hello.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "hello\n");
}

fn background_child_does_not_hold_the_response(backend: &str) {
    let site = CgiSite::new("cgi-background");
    let reaper = Reaper::new(&site);
    site.script(
        "cgi-bin/bg.cgi",
        &format!("(sleep {BG_SLEEP_SECS} &)\n{TEXT_HEAD}\necho 'main script done'\nexit 0\n"),
    );
    let server = ServerProcess::serve(site.root(), backend);
    for request in [
        "GET /cgi-bin/bg.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET /cgi-bin/bg.cgi HTTP/1.0\r\n\r\n",
    ] {
        let started = Instant::now();
        let mut conn = server.connect();
        conn.send(request.as_bytes());
        let response = conn.read_response_dechunked();
        let took = started.elapsed();
        response.assert_status(200);
        assert_eq!(response.body_text(), "main script done\n", "{request:?}");
        assert!(
            took < BG_ANSWERED_MAX,
            "{request:?}: the response took {took:?} with a background child holding stdout"
        );
    }
    // The runner kills what the script left behind after its grace period.
    let mut left = Vec::new();
    let gone = poll_until(DEADLINE, || {
        left = processes_with_environ(reaper.marker());
        left.is_empty()
    });
    assert!(gone, "the background `sleep` is still there: {left:#?}");
}

fn max_procs_refuses_with_503(backend: &str) {
    let site = CgiSite::new("cgi-maxprocs");
    let _reaper = Reaper::new(&site);
    let started = site.outside().join("gate-started");
    let release = site.outside().join("gate-release");
    site.script(
        "cgi-bin/gate.cgi",
        &format!(
            "touch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n{TEXT_HEAD}\necho released\n",
            started.display(),
            release.display()
        ),
    );
    site.script("cgi-bin/hello.cgi", &format!("{TEXT_HEAD}\necho hello\n"));
    // The gate script is held while the test works; the default 30 s
    // --cgi-timeout must not cut it on a slow machine.
    let server = ServerProcess::serve_with(
        site.root(),
        backend,
        &["--cgi-max-procs", "1", "--cgi-timeout", "300"],
    );

    let mut first = server.connect();
    first.send(b"GET /cgi-bin/gate.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    wait_for_file(&started);

    let mut second = server.connect();
    let refused = second.get_dechunked("/cgi-bin/hello.cgi");
    refused.assert_status(503);
    let retry = refused.expect_header("Retry-After");
    assert!(
        retry.trim().parse::<u64>().is_ok(),
        "Retry-After should be a number of seconds, got {retry:?}"
    );
    assert!(
        !first.has_pending_bytes(),
        "the running script was disturbed"
    );

    fs::write(&release, b"").expect("create the release file");
    let response = first.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "released\n");

    // The slot frees once the first script is reaped.
    let mut last = 0;
    let served = poll_until(DEADLINE, || {
        let response = server.connect().get_dechunked("/cgi-bin/hello.cgi");
        last = response.status;
        assert!(
            matches!(response.status, 200 | 503),
            "unexpected {}",
            response.head_text()
        );
        response.status == 200 && response.body == b"hello\n"
    });
    assert!(
        served,
        "scripts still refused after the first ended (last status {last})"
    );
}

/// A script's descendant that left its process group (`setsid`) is
/// killed once it falls to the runner: when its script is killed at
/// `--cgi-timeout`, and when its script simply exits.
fn children_that_leave_the_group_do_not_outlive_their_script(backend: &str) {
    let site = CgiSite::new("cgi-setsid");
    let _reaper = Reaper::new(&site);
    let mut escaped = Vec::new();
    for (name, end) in [("timed", "sleep 300"), ("exits", "exit 0")] {
        let pid_file = site.outside().join(format!("{name}.pid"));
        site.script(
            &format!("cgi-bin/{name}.cgi"),
            &format!(
                "setsid sh -c 'echo $$ > \"$0\"; exec sleep 301' '{pid}' \
                 </dev/null >/dev/null 2>&1 &\n\
                 while [ ! -s '{pid}' ]; do sleep 0.01; done\n\
                 {TEXT_HEAD}\necho started\n{end}\n",
                pid = pid_file.display()
            ),
        );
        escaped.push((name, pid_file));
    }
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", "1"]);
    for (name, pid_file) in escaped {
        let mut conn = server.connect();
        conn.send(format!("GET /cgi-bin/{name}.cgi HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let pid = read_pid(&pid_file);
        if name == "timed" {
            // Alive while its script sleeps: it left the script's group.
            let pgid = proc_stat(pid).map(|p| p.pgid);
            assert_eq!(
                pgid,
                Some(pid),
                "{name}.cgi's child leads a group of its own"
            );
        }
        let gone = poll_until(DEADLINE, || proc_stat(pid).is_none_or(|p| !p.is_live()));
        assert!(gone, "{name}.cgi's setsid child {pid} outlived its script");
    }
}

per_backend!(
    endless_scripts_are_killed_with_504,
    background_child_does_not_hold_the_response,
    max_procs_refuses_with_503,
    children_that_leave_the_group_do_not_outlive_their_script,
);

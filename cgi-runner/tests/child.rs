//! Runs the real `cgi-runner` binary as the server's child over a
//! socketpair: the handshake, scripts whose output, input, environment,
//! exit status and stderr travel as they should, refusals, time limits,
//! leftover background processes, several scripts at once, and the end
//! of the server.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    read_all, wait_group_gone, wait_with_timeout, KillGroup, Runner, TempRoot, CHANNEL_TIMEOUT,
    QUICK_LIMIT_MS, RUNNER, WAIT,
};
use protocol::{
    encode_frame, CgiRun, Error, ExitInfo, FromRunner, Hello, Refusal, Role, ToRunner,
    PROTOCOL_VERSION,
};

const HELLO: &str = "echo 'Content-Type: text/plain'\necho\necho \"hello from $(pwd -P)\"";

#[test]
fn a_script_s_output_arrives_through_the_passed_descriptor() {
    let root = TempRoot::new("hello");
    root.script("hello.cgi", HELLO, 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let fds_before = runner.open_fds();

    let started = runner.start(1, "cgi-bin/hello.cgi", &[], QUICK_LIMIT_MS);
    assert!(started.pid > 0);
    drop(started.stdin);
    let out = String::from_utf8(read_all(started.stdout)).expect("utf-8");
    let dir = std::fs::canonicalize(root.0.join("cgi-bin")).expect("canonical");
    assert_eq!(
        out,
        format!("Content-Type: text/plain\n\nhello from {}\n", dir.display())
    );
    assert_eq!(runner.exited(1), (ExitInfo::Code(0), false));

    // The runner kept no descriptor of the script's.
    let deadline = Instant::now() + WAIT;
    while runner.open_fds() != fds_before {
        assert!(Instant::now() < deadline, "the runner leaks descriptors");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, stderr) = runner.finish();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stderr, "");
}

/// Parses `env -0` output.
fn parse_env(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=').expect("NAME=value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// Variables the shell itself sets, whatever it was given.
const SHELL_OWN: [&str; 4] = ["PWD", "OLDPWD", "SHLVL", "_"];

#[test]
fn the_script_sees_exactly_the_environment_given_plus_path() {
    let root = TempRoot::new("env");
    root.script("env.cgi", "exec /usr/bin/env -0", 0o755);
    let marker = ("AMPED_CGI_TEST_MARKER", "must-not-leak");
    let mut runner = Runner::ready(&root.0, &[marker], &[]);
    let given = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "a=1&b=two words&c=ünï"),
        ("SCRIPT_NAME", "/cgi-bin/env.cgi"),
        ("HTTP_X_EMPTY", ""),
        ("HTTP_X_EQUALS", "x=y=z"),
    ];
    for (id, with_path) in [(1, false), (2, true)] {
        let mut env = given.to_vec();
        if with_path {
            env.push(("PATH", "/opt/amped/bin"));
        }
        let started = runner.start(id, "cgi-bin/env.cgi", &env, QUICK_LIMIT_MS);
        drop(started.stdin);
        let mut seen = parse_env(&read_all(started.stdout));
        for name in SHELL_OWN {
            seen.remove(name);
        }
        let mut expected: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !with_path {
            expected.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        }
        assert_eq!(seen, expected);
        assert!(!seen.contains_key(marker.0));
        assert_eq!(runner.exited(id), (ExitInfo::Code(0), false));
    }
    let (status, _) = runner.finish();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_request_body_goes_through_stdin() {
    let root = TempRoot::new("stdin");
    root.script(
        "cat.cgi",
        "echo 'Content-Type: application/octet-stream'\necho\nexec cat",
        0o755,
    );
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let body: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let started = runner.start(
        1,
        "cgi-bin/cat.cgi",
        &[("CONTENT_LENGTH", "1048576")],
        QUICK_LIMIT_MS,
    );
    let mut stdin = started.stdin;
    let to_write = body.clone();
    // Written from another thread: the pipes hold far less than 1 MiB.
    let writer = std::thread::spawn(move || {
        stdin.write_all(&to_write).expect("write body");
        // Dropping our end is the end of the body: the runner kept no copy.
    });
    let out = read_all(started.stdout);
    writer.join().expect("writer thread");
    let header = b"Content-Type: application/octet-stream\n\n";
    assert_eq!(&out[..header.len()], header);
    assert!(out[header.len()..] == body[..], "body came back changed");
    assert_eq!(runner.exited(1), (ExitInfo::Code(0), false));
}

#[test]
fn scripts_that_cannot_run_are_refused() {
    let root = TempRoot::new("refused");
    root.script("plain.cgi", "echo no", 0o644);
    root.script("ok.cgi", "echo ok", 0o755);
    root.file(
        "cgi-bin/badinterp.cgi",
        "#!/nonexistent/interpreter\necho no\n",
        0o755,
    );
    root.script(".hidden.cgi", "echo no", 0o755);
    std::fs::create_dir_all(root.0.join("cgi-bin/dir.cgi")).expect("mkdir");
    std::os::unix::fs::symlink("/bin/sh", root.0.join("cgi-bin/escape.cgi")).expect("symlink");
    let mut runner = Runner::ready(&root.0, &[], &[]);

    assert_eq!(runner.refused(1, "cgi-bin/missing.cgi"), Refusal::NotFound);
    assert_eq!(runner.refused(2, "nodir/x.cgi"), Refusal::NotFound);
    match runner.refused(3, "cgi-bin/plain.cgi") {
        Refusal::Forbidden(why) => assert!(why.contains("not executable"), "{why}"),
        other => panic!("{other:?}"),
    }
    match runner.refused(4, "cgi-bin/badinterp.cgi") {
        Refusal::ExecFailed(why) => assert!(why.contains("/nonexistent/interpreter"), "{why}"),
        other => panic!("{other:?}"),
    }
    for (id, script) in [
        (5, "cgi-bin/.hidden.cgi"),
        (6, "cgi-bin/dir.cgi"),
        (7, "cgi-bin/escape.cgi"),
        (8, "../etc/passwd"),
        (9, "/bin/sh"),
        (10, "cgi-bin/../cgi-bin/ok.cgi"),
        (11, ""),
        (12, "cgi-bin/ok.cgi\0"),
    ] {
        assert!(
            matches!(runner.refused(id, script), Refusal::Forbidden(_)),
            "{script:?}"
        );
    }
    // The runner is none the worse for it.
    let started = runner.start(20, "cgi-bin/ok.cgi", &[], QUICK_LIMIT_MS);
    assert_eq!(read_all(started.stdout), b"ok\n");
    assert_eq!(runner.exited(20), (ExitInfo::Code(0), false));
    // Only the runs that passed every check were accepted (said before
    // the start, so the server never sends them again).
    assert_eq!(runner.accepted, vec![4, 20]);
    let stderr = runner.wait_for_stderr("badinterp.cgi", WAIT);
    assert!(
        stderr.contains(" error cgi-runner[")
            && messages(&stderr)[0].starts_with("cgi: /cgi-bin/badinterp.cgi: not started: "),
        "{stderr}"
    );
}

#[test]
fn exit_statuses_are_reported() {
    let root = TempRoot::new("exit");
    root.script("three.cgi", "exit 3", 0o755);
    root.script("term.cgi", "kill -TERM $$", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    runner.start(1, "cgi-bin/three.cgi", &[], QUICK_LIMIT_MS);
    assert_eq!(runner.exited(1), (ExitInfo::Code(3), false));
    runner.start(2, "cgi-bin/term.cgi", &[], QUICK_LIMIT_MS);
    assert_eq!(runner.exited(2), (ExitInfo::Signal(libc::SIGTERM), false));
}

/// loop.cgi's time limit. It must have started its background sleep and
/// recorded its pid before that (milliseconds of work), so 3 s leaves
/// room for a loaded machine.
const LOOP_LIMIT: Duration = Duration::from_secs(3);
/// The kill must be reported within this of the request: the limit plus
/// 20 s for a loaded 2-core machine (below [`CHANNEL_TIMEOUT`], so that
/// this bound is what fails).
const LOOP_REPORTED_MAX: Duration = Duration::from_secs(23);

#[test]
fn a_script_past_its_time_limit_is_killed_with_its_group() {
    let root = TempRoot::new("timeout");
    let sleep_pid = root.0.join("sleep.pid");
    // A child in the background (sharing stdout) and an endless loop in
    // the foreground.
    root.script(
        "loop.cgi",
        &format!(
            "sleep 300 &\necho $! > '{}'\nwhile :; do :; done",
            sleep_pid.display()
        ),
        0o755,
    );
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let start = Instant::now();
    let limit_ms = u64::try_from(LOOP_LIMIT.as_millis()).expect("a small limit");
    let started = runner.start(1, "cgi-bin/loop.cgi", &[], limit_ms);
    let _spinning = KillGroup(started.pid);
    assert_eq!(runner.exited(1), (ExitInfo::Signal(libc::SIGKILL), true));
    let took = start.elapsed();
    assert!(
        took >= LOOP_LIMIT - Duration::from_millis(50) && took < LOOP_REPORTED_MAX,
        "killed {took:?} after the request, with a limit of {LOOP_LIMIT:?}"
    );
    // The background sleep existed (so the checks below are not vacuous);
    // as a background job of a non-interactive shell it is in the
    // script's group.
    let sleep = std::fs::read_to_string(&sleep_pid).unwrap_or_default();
    assert!(
        sleep.trim().parse::<u32>().is_ok(),
        "loop.cgi had not recorded its background sleep ({sleep:?}) by its {LOOP_LIMIT:?} limit"
    );
    wait_group_gone(started.pid, WAIT);
    // Killed with the group: stdout (held by the sleep too) ends at once,
    // long before the sleep's 300 s.
    assert!(read_all(started.stdout).is_empty());
    runner.wait_for_stderr(
        &format!("cgi: /cgi-bin/loop.cgi: killed after {limit_ms} ms (time limit)"),
        WAIT,
    );
}

/// The runner's grace period after a script's exit (`GRACE` in
/// cgi-runner/src/runner.rs).
const GRACE: Duration = Duration::from_secs(2);
/// How many runs may be inconclusive before the grace test gives up.
const GRACE_ATTEMPTS: u64 = 5;

#[test]
fn a_background_child_holding_stdout_is_killed_after_the_grace_period() {
    let root = TempRoot::new("grace");
    root.script("bg.cgi", "sleep 300 &\necho done", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    // The exit must be reported while the sleep still holds stdout: the
    // runner does not wait for end-of-file to report it. Seen from here,
    // stdout has not hung up yet when the exit arrives. A test thread kept
    // off the CPU for the whole grace period between the two sees the
    // hang-up anyway; such a run proves nothing either way and is tried
    // again. A runner that waits for end-of-file fails every run.
    let mut proven = false;
    for id in 1..=GRACE_ATTEMPTS {
        let start = Instant::now();
        let started = runner.start(id, "cgi-bin/bg.cgi", &[], QUICK_LIMIT_MS);
        let _sleeping = KillGroup(started.pid);
        assert_eq!(runner.exited(id), (ExitInfo::Code(0), false));
        let exited_after = start.elapsed();
        let held = !hung_up(&started.stdout);
        // The sleep holds stdout until the grace period after the exit is
        // over, and no longer: end-of-file within READ_DEADLINE, long
        // before the sleep's 300 s, means the runner killed it.
        let out = read_all(started.stdout);
        let eof_after = start.elapsed();
        assert_eq!(out, b"done\n");
        assert!(
            eof_after >= GRACE,
            "stdout ended {eof_after:?} after the request, before the {GRACE:?} grace period"
        );
        wait_group_gone(started.pid, WAIT);
        if held {
            proven = true;
            break;
        }
        eprintln!(
            "run {id}: stdout had ended when the exit arrived ({exited_after:?}, end-of-file \
             at {eof_after:?}); trying again"
        );
    }
    assert!(
        proven,
        "in {GRACE_ATTEMPTS} runs the exit was never reported before stdout ended"
    );
}

#[test]
fn stderr_lines_reach_the_log_with_the_script_s_name() {
    let root = TempRoot::new("stderr");
    root.script(
        "err.cgi",
        "echo one >&2\nprintf 'two\\r\\nthree' >&2\necho out",
        0o755,
    );
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let started = runner.start(1, "cgi-bin/err.cgi", &[], QUICK_LIMIT_MS);
    assert_eq!(read_all(started.stdout), b"out\n");
    assert_eq!(runner.exited(1), (ExitInfo::Code(0), false));
    let log = runner.wait_for_stderr("cgi: /cgi-bin/err.cgi: three\n", WAIT);
    assert_eq!(
        messages(&log),
        [
            "cgi: /cgi-bin/err.cgi: one",
            "cgi: /cgi-bin/err.cgi: two",
            "cgi: /cgi-bin/err.cgi: three"
        ]
    );
}

/// The messages of error-log lines, after their head
/// (`TIME error cgi-runner[PID]: `).
fn messages(log: &str) -> Vec<&str> {
    log.lines()
        .map(|line| line.split_once("]: ").map_or(line, |(_, message)| message))
        .collect()
}

#[test]
fn several_scripts_run_at_once() {
    let root = TempRoot::new("concurrent");
    root.script("wait.cgi", "read line\necho \"got $line\"", 0o755);
    root.script("quick.cgi", "echo quick", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    // The first script waits for its body; the runner must not.
    let mut waiting = runner.start(1, "cgi-bin/wait.cgi", &[], QUICK_LIMIT_MS);
    let _waiting_group = KillGroup(waiting.pid);
    let mut others = Vec::new();
    for id in 2..6 {
        others.push((
            id,
            runner.start(id, "cgi-bin/quick.cgi", &[], QUICK_LIMIT_MS),
        ));
    }
    for (id, started) in others {
        assert_eq!(read_all(started.stdout), b"quick\n");
        assert_eq!(runner.exited(id), (ExitInfo::Code(0), false));
    }
    waiting.stdin.write_all(b"body\n").expect("write");
    drop(waiting.stdin);
    assert_eq!(read_all(waiting.stdout), b"got body\n");
    assert_eq!(runner.exited(1), (ExitInfo::Code(0), false));
}

#[test]
fn too_many_scripts_are_refused_as_overloaded() {
    let root = TempRoot::new("overload");
    root.script("wait.cgi", "read line", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &["--max-scripts", "1"]);
    let first = runner.start(1, "cgi-bin/wait.cgi", &[], QUICK_LIMIT_MS);
    assert_eq!(runner.refused(2, "cgi-bin/wait.cgi"), Refusal::Overloaded);
    drop(first.stdin);
    assert_eq!(runner.exited(1), (ExitInfo::Code(1), false));
    let second = runner.start(3, "cgi-bin/wait.cgi", &[], QUICK_LIMIT_MS);
    drop(second.stdin);
    assert_eq!(runner.exited(3), (ExitInfo::Code(1), false));
}

#[test]
fn the_end_of_the_server_kills_running_scripts() {
    let root = TempRoot::new("server-eof");
    root.script("long.cgi", "sleep 300 &\nsleep 300", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let a = runner.start(1, "cgi-bin/long.cgi", &[], 600_000);
    let b = runner.start(2, "cgi-bin/long.cgi", &[], 600_000);
    let _groups = (KillGroup(a.pid), KillGroup(b.pid));
    // finish() fails unless the runner exits within WAIT (30 s), far
    // sooner than the scripts' 300 s: it did not wait for them.
    let (status, _) = runner.finish();
    assert_eq!(status.code(), Some(0));
    for started in [a, b] {
        wait_group_gone(started.pid, WAIT);
        assert!(read_all(started.stdout).is_empty());
    }
}

#[test]
fn scripts_inherit_no_socket_from_the_runner() {
    let root = TempRoot::new("fds");
    root.script(
        "fds.cgi",
        "for f in /proc/$$/fd/*; do readlink \"$f\"; done\nexit 0",
        0o755,
    );
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let started = runner.start(1, "cgi-bin/fds.cgi", &[], QUICK_LIMIT_MS);
    let out = String::from_utf8(read_all(started.stdout)).expect("utf-8");
    assert!(out.contains("pipe:"), "{out}");
    assert!(!out.contains("socket:"), "the channel leaked: {out}");
    assert_eq!(runner.exited(1), (ExitInfo::Code(0), false));
}

#[test]
fn eof_before_the_handshake_is_a_clean_exit() {
    let root = TempRoot::new("early-eof");
    let runner = Runner::spawn(&root.0, &[], &[]);
    let (status, stderr) = runner.finish();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stderr, "");
}

fn expect_protocol_error(runner: Runner) {
    let (status, stderr) = runner.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_version_mismatch_is_a_protocol_error() {
    let root = TempRoot::new("version");
    let mut runner = Runner::spawn(&root.0, &[], &[]);
    let mut hello = Hello::new(Role::Server);
    hello.version = PROTOCOL_VERSION + 1;
    runner
        .channel
        .send(&ToRunner::Hello(hello), &[])
        .expect("send");
    // The runner leaves without a word: end-of-file (or a reset, if our
    // hello was still unread when it closed).
    match runner.channel.recv::<FromRunner>() {
        Ok(None) => {}
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the runner to leave without a word, got {other:?}"),
    }
    expect_protocol_error(runner);
}

#[test]
fn a_run_before_hello_is_a_protocol_error() {
    let root = TempRoot::new("nohello");
    let mut runner = Runner::spawn(&root.0, &[], &[]);
    runner.send_run(1, "cgi-bin/x.cgi", &[], 100);
    expect_protocol_error(runner);
}

#[test]
fn garbage_after_the_handshake_is_a_protocol_error_that_kills_scripts() {
    let root = TempRoot::new("garbage");
    root.script("long.cgi", "sleep 300", 0o755);
    let mut runner = Runner::ready(&root.0, &[], &[]);
    let started = runner.start(1, "cgi-bin/long.cgi", &[], 600_000);
    let _group = KillGroup(started.pid);
    runner
        .channel
        .socket()
        .write_all(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff])
        .expect("write");
    wait_group_gone(started.pid, WAIT);
    expect_protocol_error(runner);
}

#[test]
fn a_run_and_the_hello_in_one_write_are_both_served() {
    let root = TempRoot::new("oneshot");
    root.script("ok.cgi", "echo ok", 0o755);
    let mut runner = Runner::spawn(&root.0, &[], &[]);
    let mut bytes = encode_frame(&ToRunner::Hello(Hello::new(Role::Server))).expect("encode");
    bytes.extend(
        encode_frame(&ToRunner::Run(CgiRun {
            id: 9,
            script: "cgi-bin/ok.cgi".into(),
            env: Vec::new(),
            timeout_ms: QUICK_LIMIT_MS,
        }))
        .expect("encode"),
    );
    runner.channel.socket().write_all(&bytes).expect("write");
    let hello = runner
        .channel
        .recv::<FromRunner>()
        .expect("recv")
        .expect("hello");
    assert!(matches!(hello.message, FromRunner::Hello(_)));
    let started = runner.reply_for(9);
    assert!(matches!(started.message, FromRunner::Started { id: 9, .. }));
    assert_eq!(runner.exited(9), (ExitInfo::Code(0), false));
}

#[test]
fn the_runner_dies_with_its_parent() {
    let root = TempRoot::new("pdeathsig");
    // sh starts the runner in the background and exits once we create
    // the gate file, while we still hold our end open: only the
    // parent-death signal can end the runner.
    let gate = root.0.join("gate");
    let (mut sh, ours) =
        tests::child_channel::spawn_under_short_lived_parent(Path::new(RUNNER), &root.0, &gate);
    ours.set_read_timeout(Some(CHANNEL_TIMEOUT))
        .expect("timeout");
    let mut channel = protocol::Channel::new(ours);
    channel
        .send(&ToRunner::Hello(Hello::new(Role::Server)), &[])
        .expect("send");
    assert!(matches!(
        channel
            .recv::<FromRunner>()
            .expect("recv")
            .map(|r| r.message),
        Some(FromRunner::Hello(_))
    ));
    // The runner is up (and has asked for its parent-death signal) once
    // it answers the handshake; only then does its parent exit.
    std::fs::write(&gate, b"").expect("open the gate");
    assert!(wait_with_timeout(&mut sh, WAIT).success());
    match channel.recv::<FromRunner>() {
        Ok(None) => {}
        other => panic!("expected end-of-file from a dead runner, got {other:?}"),
    }
}

#[test]
fn a_bad_channel_fd_is_a_usage_error() {
    let root = TempRoot::new("badfd");
    let out = common::run_standalone(&["--root", root.path_str(), "--channel-fd", "999"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--channel-fd"));
}

/// True if the pipe's writers are all gone (poll reports POLLHUP).
fn hung_up(file: &std::fs::File) -> bool {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid pollfd, without waiting.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready > 0 && pfd.revents & libc::POLLHUP != 0
}

#[test]
fn orphaned_grandchildren_are_killed_and_reaped_by_the_runner() {
    let root = TempRoot::new("orphans");
    let pids_file = root.0.join("orphans");
    // The subshell exits at once, orphaning its sleep (whose pid it
    // records): the runner (a child subreaper) inherits it. The sleep has
    // left the script's process group (setsid), so once the script has
    // ended the runner kills it (it belongs to no script's group) and
    // reaps it: it is then gone from /proc altogether (a zombie would
    // stay).
    root.script(
        "orphan.cgi",
        &format!(
            "( exec setsid sleep 300 >/dev/null & echo $! >> '{}' )\necho ok",
            pids_file.display()
        ),
        0o755,
    );
    let mut runner = Runner::ready(&root.0, &[], &[]);
    // Should the test fail, no sleep is left behind.
    let mut orphans = KillPids(Vec::new());
    for id in 1..4 {
        let started = runner.start(id, "cgi-bin/orphan.cgi", &[], QUICK_LIMIT_MS);
        let _group = KillGroup(started.pid);
        drop(started.stdin);
        assert_eq!(read_all(started.stdout), b"ok\n");
        assert_eq!(runner.exited(id), (ExitInfo::Code(0), false));
        // The script waited for its subshell, which wrote the pid and
        // exited before it: all of this is settled once the exit arrives.
        let recorded: Vec<u32> = std::fs::read_to_string(&pids_file)
            .expect("the orphans' pids")
            .lines()
            .map(|l| l.trim().parse().expect("a pid"))
            .collect();
        assert_eq!(recorded.len(), orphans.0.len() + 1, "one orphan per run");
        let orphan = *recorded.last().expect("a pid");
        orphans.0.push(orphan);
        let deadline = Instant::now() + WAIT;
        while std::path::Path::new(&format!("/proc/{orphan}")).exists() {
            assert!(
                Instant::now() < deadline,
                "orphan {orphan} not killed and reaped: {:?}",
                std::fs::read_to_string(format!("/proc/{orphan}/stat"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_group_gone(started.pid, WAIT);
    }
    // All gone: nothing of this test is left to kill (a reaped pid may
    // soon belong to someone else).
    orphans.0.clear();
    let (status, _) = runner.finish();
    assert_eq!(status.code(), Some(0));
}

/// Kills the listed processes (a test's own orphaned sleeps) when dropped,
/// or when asked.
struct KillPids(Vec<u32>);

impl KillPids {
    fn kill(&self) {
        for &pid in &self.0 {
            let Ok(pid) = i32::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) on a sleep a script of this test started,
            // found as the runner's child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for KillPids {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The logs: error-log lines carry the time, a level and the process that
//! wrote them (the server, helper N, the cgi-runner forwarding a script's
//! stderr);
//! `--error-log PATH` collects the server's and its children's lines;
//! `--access-log-format json` writes one object a line; SIGHUP reopens
//! both logs after they are renamed (logrotate), the children's error log
//! too; running as root without `--user` is warned about.

use std::fs;
use std::path::{Path, PathBuf};

use tests::cgi::{CgiSite, TEXT_HEAD};
use tests::procfs::{live_children_named, poll_until, send_signal, wait_for_live_children};
use tests::{per_backend, ServerProcess, DEADLINE};

/// A site with `cgi-bin/say.cgi`, which writes its query string to stderr.
fn site(tag: &str) -> CgiSite {
    let site = CgiSite::new(tag);
    site.script(
        "cgi-bin/say.cgi",
        &format!("echo \"said $QUERY_STRING\" >&2\n{TEXT_HEAD}\necho ok\n"),
    );
    site.file("hello.txt", b"hello\n");
    site
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the file at `path` has a line containing `needle`.
fn wait_for_line(path: &Path, needle: &str) -> bool {
    poll_until(DEADLINE, || read(path).lines().any(|l| l.contains(needle)))
}

/// Checks the head of an error-log line: `TIME LEVEL NAME[PID]: `.
fn assert_head(line: &str, level: &str, name: &str) {
    let mut words = line.splitn(3, ' ');
    let time = words.next().unwrap_or_default();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "an RFC 3339 UTC time first: {line:?}"
    );
    assert_eq!(words.next(), Some(level), "the level: {line:?}");
    let who = words.next().unwrap_or_default();
    assert!(
        who.starts_with(&format!("{name}[")),
        "written by {name}: {line:?}"
    );
}

struct Logs {
    error: PathBuf,
    access: PathBuf,
}

fn logs(site: &CgiSite) -> Logs {
    let dir = site.outside();
    Logs {
        error: dir.join("error.log"),
        access: dir.join("access.log"),
    }
}

fn start(site: &CgiSite, backend: &str, logs: &Logs, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--root",
        site.root().to_str().expect("UTF-8"),
        "--event-handler",
        backend,
        "--error-log",
        logs.error.to_str().expect("UTF-8"),
        "--access-log",
        logs.access.to_str().expect("UTF-8"),
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn lines_go_to_the_error_log_file(backend: &str) {
    let site = site(&format!("error-log-{backend}"));
    let logs = logs(&site);
    let server = start(&site, backend, &logs, &[]);
    server
        .connect()
        .get_dechunked("/cgi-bin/say.cgi?first")
        .assert_status(200);
    assert!(
        wait_for_line(&logs.error, "said first"),
        "{}",
        read(&logs.error)
    );
    let text = read(&logs.error);
    let script = text
        .lines()
        .find(|l| l.contains("said first"))
        .expect("the line");
    assert_head(script, "error", "cgi-runner");
    assert!(
        script.ends_with("]: cgi: /cgi-bin/say.cgi: said first"),
        "{script}"
    );
    // Nothing of it on the server's stderr any more.
    assert!(
        !server.stderr_text().contains("said first"),
        "{}",
        server.stderr_text()
    );
    // A running server was started as root without --user: it says so.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let warning = text
            .lines()
            .find(|l| l.contains("running as root without --user"))
            .unwrap_or_else(|| panic!("no root warning in {text}"));
        assert_head(warning, "warn", "server");
    }
}

fn helpers_write_their_number(backend: &str) {
    let site = site(&format!("helper-names-{backend}"));
    let logs = logs(&site);
    let error = logs.error.to_str().expect("UTF-8");
    // A malformed test hook makes every helper log one line as it starts.
    let _server = ServerProcess::serve_with_env(
        site.root(),
        backend,
        &["--helpers", "2", "--error-log", error],
        &[("AMPED_TEST_HELPER_DELAY", "no-millis-here")],
    );
    for n in 0..2 {
        let name = format!("helper-{n}");
        assert!(
            wait_for_line(&logs.error, &format!(" {name}[")),
            "no line from {name}: {}",
            read(&logs.error)
        );
        let text = read(&logs.error);
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {name}[")))
            .expect("the line");
        assert_head(line, "error", &name);
        assert!(line.contains("ignoring malformed"), "{line}");
    }
}

fn sighup_reopens_both_logs(backend: &str) {
    let site = site(&format!("reopen-{backend}"));
    let logs = logs(&site);
    let server = start(&site, backend, &logs, &[]);
    server
        .connect()
        .get_dechunked("/cgi-bin/say.cgi?before")
        .assert_status(200);
    assert!(
        wait_for_line(&logs.error, "said before"),
        "{}",
        read(&logs.error)
    );
    assert!(
        wait_for_line(&logs.access, "say.cgi?before"),
        "{}",
        read(&logs.access)
    );

    // What logrotate does: rename, then SIGHUP.
    let (error_old, access_old) = (
        logs.error.with_extension("log.1"),
        logs.access.with_extension("log.1"),
    );
    fs::rename(&logs.error, &error_old).expect("rename the error log");
    fs::rename(&logs.access, &access_old).expect("rename the access log");
    let pid = i32::try_from(server.pid()).expect("pid");
    let helpers = wait_for_live_children(pid, "helper", 2);
    assert!(send_signal(pid, libc::SIGHUP), "SIGHUP delivered");
    assert!(
        wait_for_line(&logs.error, "SIGHUP: reopened the logs"),
        "the server's line in the new file"
    );

    // The runner reopens on the SIGHUP the server passes on; until it has,
    // its lines still go to the old file. Ask until one lands in the new.
    let mut n = 0;
    let landed = poll_until(DEADLINE, || {
        n += 1;
        let query = format!("/cgi-bin/say.cgi?after-{n}");
        server.connect().get_dechunked(&query).assert_status(200);
        read(&logs.error).contains("said after-")
    });
    assert!(
        landed,
        "no script line in the new error log:\n{}",
        read(&logs.error)
    );
    assert!(
        wait_for_line(&logs.access, "say.cgi?after-"),
        "access lines in the new file"
    );
    assert!(read(&error_old).contains("said before"));
    assert!(read(&access_old).contains("say.cgi?before"));
    assert!(
        !read(&access_old).contains("say.cgi?after-"),
        "{}",
        read(&access_old)
    );
    assert!(
        server.stderr_text().is_empty(),
        "nothing on stderr: {}",
        server.stderr_text()
    );
    // The helpers took the SIGHUP passed on to them (reopening their log)
    // and are still the same processes.
    assert_eq!(live_children_named(pid, "helper"), helpers);
}

fn json_access_log(backend: &str) {
    let site = site(&format!("json-log-{backend}"));
    let logs = logs(&site);
    let server = start(&site, backend, &logs, &["--access-log-format", "json"]);
    let mut conn = server.connect();
    conn.request(
        "GET",
        "/hello.txt",
        &[("User-Agent", "amped \"test\""), ("Referer", "http://x/")],
    )
    .assert_status(200);
    conn.get("/missing").assert_status(404);
    assert!(
        wait_for_line(&logs.access, "/missing"),
        "{}",
        read(&logs.access)
    );
    let text = read(&logs.access);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = &lines[0];
    assert_eq!(first["remote_addr"], "127.0.0.1");
    assert_eq!(first["request"], "GET /hello.txt HTTP/1.1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["target"], "/hello.txt");
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 6);
    assert_eq!(first["user_agent"], "amped \"test\"");
    assert_eq!(first["referer"], "http://x/");
    assert!(
        first["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{first}"
    );
    assert_eq!(lines[1]["status"], 404);
    assert!(lines[1]["referer"].is_null());
}

per_backend!(
    lines_go_to_the_error_log_file,
    helpers_write_their_number,
    sighup_reopens_both_logs,
    json_access_log
);

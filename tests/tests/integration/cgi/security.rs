//! Which scripts may run, under each event backend: `..` (plain and
//! `%2e%2e`-encoded) reaching a script outside the root is 400 and that
//! script never runs (it would leave a marker file); a symlink to it from
//! inside the root is 403 and never runs it either; a `.cgi` file that is
//! not executable is 403, a missing one 404 (also with PATH_INFO), and a
//! dot-file script 403 without running.
//!
//! "Never runs" is checked once every script the server could have asked
//! for has certainly finished (see [`Site::assert_no_forbidden_script_ran`]),
//! not at the moment a response arrives.

use std::os::unix::fs::symlink;
use std::path::Path;

use tests::cgi::{set_mode, write_executable, CgiSite, TEXT_HEAD};
use tests::procfs::{live_children, poll_until};
use tests::{per_backend, Connection, Response, ServerProcess, DEADLINE};

/// A script that leaves `marker` when it runs.
fn marking_script(marker: &Path) -> String {
    format!(
        "touch '{}'\n{TEXT_HEAD}\necho 'this script must not run'\n",
        marker.display()
    )
}

struct Site {
    site: CgiSite,
    /// Left by any script that must not run.
    marker: std::path::PathBuf,
}

fn security_site() -> Site {
    let site = CgiSite::new("cgi-security");
    let outside = site.outside();
    let marker = outside.join("forbidden-script-ran");
    let evil = outside.join("evil.cgi");
    let evil_text = format!("#!/bin/sh\n{}", marking_script(&marker));
    write_executable(&evil, evil_text.as_bytes(), 0o755);
    write_executable(
        &outside.join("cgi-bin/evil.cgi"),
        evil_text.as_bytes(),
        0o755,
    );

    site.script("cgi-bin/ok.cgi", &format!("{TEXT_HEAD}\necho ok\n"));
    site.script("cgi-bin/.hidden.cgi", &marking_script(&marker));
    site.script(".private/run.cgi", &marking_script(&marker));
    let noexec = site.script("cgi-bin/noexec.cgi", &marking_script(&marker));
    set_mode(&noexec, 0o644);
    symlink(&evil, site.root().join("cgi-bin/link.cgi")).expect("symlink link.cgi");
    symlink("../outside", site.root().join("outdir")).expect("symlink outdir");
    Site { site, marker }
}

fn raw_get(server: &ServerProcess, target: &str) -> (Connection, Response) {
    let mut conn = server.connect();
    conn.send(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let response = conn
        .try_read_response_dechunked(false)
        .unwrap_or_else(|e| panic!("GET {target}: {e}"));
    (conn, response)
}

impl Site {
    /// What the response alone can show: no output of a forbidden script.
    /// (The marker is checked by
    /// [`assert_no_forbidden_script_ran`](Self::assert_no_forbidden_script_ran)
    /// once nothing can still be about to create it.)
    fn assert_never_ran(&self, target: &str, response: &Response) {
        assert!(
            !response.body_text().contains("must not run"),
            "{target} ran a forbidden script:\n{}",
            response.head_text()
        );
    }

    /// Proves that none of the requests made so far ran a forbidden script.
    /// `ok.cgi` is asked for after every earlier response has arrived; the
    /// server's runner starts scripts one message at a time, in the order
    /// the server sends them, so once `ok.cgi` has answered, any script the
    /// server asked for earlier has been started. Once the runner has no
    /// live child left, every such script has ended, and the marker would
    /// be there.
    fn assert_no_forbidden_script_ran(&self, server: &ServerProcess) {
        let (_, response) = raw_get(server, "/cgi-bin/ok.cgi");
        response.assert_status(200);
        assert_eq!(response.body_text(), "ok\n");
        let server_pid = i32::try_from(server.pid()).expect("pid fits in pid_t");
        let runners: Vec<i32> = live_children(server_pid)
            .into_iter()
            .filter(|p| p.cmdline().contains("cgi-runner"))
            .map(|p| p.pid)
            .collect();
        assert_eq!(
            runners.len(),
            1,
            "the server's cgi-runner among its children: {:?}",
            live_children(server_pid)
        );
        let mut left = Vec::new();
        assert!(
            poll_until(DEADLINE, || {
                left = live_children(runners[0]);
                left.is_empty()
            }),
            "the runner's scripts did not end within {DEADLINE:?}: {left:?}"
        );
        assert!(
            !self.marker.exists(),
            "a forbidden script ran (it left its marker)"
        );
    }
}

fn dotdot_to_outside_script_is_400(backend: &str) {
    let s = security_site();
    let server = ServerProcess::serve(s.site.root(), backend);
    for target in [
        "/../outside/evil.cgi",
        "/cgi-bin/../../outside/evil.cgi",
        "/cgi-bin/../../outside/cgi-bin/evil.cgi",
        "/../outside/evil.cgi/path/info?x=1",
        "/cgi-bin/ok.cgi/../../../outside/evil.cgi",
        "/%2e%2e/outside/evil.cgi",
        "/%2E%2E/outside/evil.cgi",
        "/cgi-bin/%2e%2e/%2e%2e/outside/evil.cgi",
        "/cgi-bin/%2e%2e/%2E%2e/outside/cgi-bin/evil.cgi/info",
        "/%2e./outside/evil.cgi",
        "/cgi-bin/..%2f..%2foutside%2fevil.cgi",
    ] {
        let (mut conn, response) = raw_get(&server, target);
        s.assert_never_ran(target, &response);
        response.assert_error_page(400);
        conn.expect_closed();
    }
    // A script inside the root still runs, and none outside it ran.
    s.assert_no_forbidden_script_ran(&server);
}

fn symlinks_to_outside_scripts_are_403(backend: &str) {
    let s = security_site();
    let server = ServerProcess::serve(s.site.root(), backend);
    for target in [
        "/cgi-bin/link.cgi",
        "/cgi-bin/link.cgi/extra",
        "/outdir/evil.cgi",
        "/outdir/cgi-bin/evil.cgi",
    ] {
        let (_, response) = raw_get(&server, target);
        s.assert_never_ran(target, &response);
        response.assert_error_page(403);
    }
    s.assert_no_forbidden_script_ran(&server);
}

fn unrunnable_scripts_are_refused(backend: &str) {
    let s = security_site();
    let server = ServerProcess::serve(s.site.root(), backend);
    let mut conn = server.connect();
    for (target, status) in [
        ("/cgi-bin/noexec.cgi", 403),
        ("/cgi-bin/noexec.cgi/path/info", 403),
        ("/cgi-bin/missing.cgi", 404),
        ("/cgi-bin/missing.cgi/path/info?q=1", 404),
        ("/nodir/missing.cgi", 404),
        ("/cgi-bin/.hidden.cgi", 403),
        ("/cgi-bin/%2ehidden.cgi", 403),
        ("/cgi-bin/.hidden.cgi/info", 403),
        ("/.private/run.cgi", 403),
    ] {
        let response = conn.get_dechunked(target);
        s.assert_never_ran(target, &response);
        response.assert_error_page(status);
        assert!(
            !response.connection_has("close"),
            "{target}: a {status} keeps the connection:\n{}",
            response.head_text()
        );
    }
    let response = conn.get_dechunked("/cgi-bin/ok.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "ok\n");
    s.assert_no_forbidden_script_ran(&server);
}

per_backend!(
    dotdot_to_outside_script_is_400,
    symlinks_to_outside_scripts_are_403,
    unrunnable_scripts_are_refused,
);

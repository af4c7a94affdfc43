//! Runs the real `cgi-runner` binary standalone, as a person debugging a
//! script would: raw output, exit statuses, refusals, time limit, help.
//! Every run has a deadline, after which it and its scripts are killed.

mod common;

use std::time::{Duration, Instant};

use common::{run_standalone, run_standalone_env, TempRoot};

#[test]
fn prints_the_raw_output_with_a_basic_cgi_environment() {
    let root = TempRoot::new("sa-env");
    root.script(
        "show.cgi",
        "echo 'Content-Type: text/plain'\necho\n\
         for v in GATEWAY_INTERFACE REQUEST_METHOD QUERY_STRING PATH_INFO SCRIPT_NAME \
         SERVER_PROTOCOL PATH; do eval \"echo $v=\\$$v\"; done\n\
         echo \"HAS_SOFTWARE=${SERVER_SOFTWARE:+yes}\"\n\
         echo \"FILENAME_OK=$([ \"$SCRIPT_FILENAME\" = \"$DOCUMENT_ROOT/cgi-bin/show.cgi\" ] && echo yes)\"\n\
         echo \"LEAK=${AMPED_CGI_SA_MARKER:-none}\"\n\
         echo oops >&2",
        0o755,
    );
    let out = run_standalone_env(
        &[
            "--root",
            root.path_str(),
            "--query",
            "a=1&b=2",
            "--path-info",
            "/extra/bits",
            "/cgi-bin/show.cgi",
        ],
        b"",
        &[("AMPED_CGI_SA_MARKER", "leaked")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Content-Type: text/plain\n\n\
         GATEWAY_INTERFACE=CGI/1.1\n\
         REQUEST_METHOD=GET\n\
         QUERY_STRING=a=1&b=2\n\
         PATH_INFO=/extra/bits\n\
         SCRIPT_NAME=/cgi-bin/show.cgi\n\
         SERVER_PROTOCOL=HTTP/1.1\n\
         PATH=/usr/local/bin:/usr/bin:/bin\n\
         HAS_SOFTWARE=yes\n\
         FILENAME_OK=yes\n\
         LEAK=none\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
}

#[test]
fn a_post_body_comes_from_stdin_with_its_length() {
    let root = TempRoot::new("sa-post");
    root.script(
        "post.cgi",
        "echo \"len=$CONTENT_LENGTH method=$REQUEST_METHOD\"\nexec cat",
        0o755,
    );
    let out = run_standalone(
        &[
            "--root",
            root.path_str(),
            "--method",
            "POST",
            "/cgi-bin/post.cgi",
        ],
        b"name=value",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "len=10 method=POST\nname=value"
    );
}

#[test]
fn exit_statuses_follow_the_script() {
    let root = TempRoot::new("sa-exit");
    root.script("fail.cgi", "echo partial\nexit 4", 0o755);
    let out = run_standalone(&["--root", root.path_str(), "cgi-bin/fail.cgi"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"partial\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exit status 4"));
}

#[test]
fn refused_scripts_and_bad_roots_exit_2_with_a_reason() {
    let root = TempRoot::new("sa-refused");
    root.script("plain.cgi", "echo no", 0o644);
    root.file("cgi-bin/bad.cgi", "#!/nonexistent/sh\n", 0o755);
    let r = root.path_str();
    for (script, reason) in [
        ("/cgi-bin/missing.cgi", "not found"),
        ("/cgi-bin/plain.cgi", "not executable"),
        ("/cgi-bin/bad.cgi", "/nonexistent/sh"),
        ("/../etc/passwd", "outside the document root"),
    ] {
        let out = run_standalone(&["--root", r, script], b"");
        assert_eq!(out.status.code(), Some(2), "{script}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        // An error-log line: `TIME error cgi-runner[PID]: SCRIPT: REASON`.
        let message = err.split_once("]: ").map_or("", |(head, message)| {
            assert!(head.contains(" error cgi-runner["), "{script}: {err}");
            message
        });
        assert!(
            message.starts_with(&format!("{script}: ")) && err.contains(reason),
            "{script}: {err}"
        );
    }
    let missing = root.0.join("missing");
    let out = run_standalone(&["--root", missing.to_str().expect("utf-8"), "/x.cgi"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("document root"));
    assert_eq!(run_standalone(&["--root", r], b"").status.code(), Some(2));
    assert_eq!(run_standalone(&["/x.cgi"], b"").status.code(), Some(2));
    assert_eq!(
        run_standalone(&["--root", r, "--timeout", "0", "/x.cgi"], b"")
            .status
            .code(),
        Some(2)
    );
}

/// The standalone run's `--timeout`, in seconds: the script must have
/// printed its first line before it (milliseconds of work), so 3 s leaves
/// room for a loaded machine.
const TIMEOUT_SECS: u64 = 3;
/// The run must have ended within this: the limit plus 27 s for a loaded
/// 2-core machine, far short of the background sleep's 300 s and below
/// the harness's own 60 s deadline (so that this bound is what fails).
const TIMEOUT_ENDED_MAX: Duration = Duration::from_secs(30);

#[test]
fn the_timeout_kills_the_script_and_its_children() {
    let root = TempRoot::new("sa-timeout");
    root.script(
        "loop.cgi",
        "echo start\nsleep 300 &\nwhile :; do :; done",
        0o755,
    );
    let start = Instant::now();
    let out = run_standalone(
        &[
            "--root",
            root.path_str(),
            "--timeout",
            &TIMEOUT_SECS.to_string(),
            "/cgi-bin/loop.cgi",
        ],
        b"",
    );
    // The background sleep shares our stdout pipe: the run ending (its
    // stdout reaching end-of-file) long before the sleep would proves it
    // was killed too; and not before the limit (50 ms for timer
    // granularity).
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(TIMEOUT_SECS) - Duration::from_millis(50)
            && took < TIMEOUT_ENDED_MAX,
        "the run took {took:?} with --timeout {TIMEOUT_SECS}"
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"start\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout"));
}

#[test]
fn help_documents_every_option() {
    let out = run_standalone(&["--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--root",
        "--channel-fd",
        "--max-scripts",
        "--method",
        "--query",
        "--path-info",
        "--timeout",
        "SCRIPT",
        "Exit status",
        "RLIMIT_CORE",
        "process group",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

//! Runs the real `helper` binary: as the server's child over a socketpair
//! (handshake, lookups, descriptors, the delay hook, exit statuses, parent
//! death) and standalone from the command line.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tests::child_channel::{inherit, spawn_locked, spawn_under_short_lived_parent};

use protocol::{
    encode_frame, Body, Channel, Error, FromHelper, Hello, LookupReply, LookupRequest, Outcome,
    Received, Role, ToHelper, PROTOCOL_VERSION,
};

const HELPER: &str = env!("CARGO_BIN_EXE_helper");

/// A deadline for replies and exits that normally take milliseconds,
/// generous for a loaded 2-core machine, and above [`DELAY`] so that a
/// delayed lookup is not mistaken for a hang.
const WAIT: Duration = Duration::from_secs(30);

/// A temporary document root, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(name: &str) -> TempRoot {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("amped-helper-it-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp root");
        let root = TempRoot(dir);
        root.write("index.html", b"<h1>home</h1>");
        root.write("small.txt", b"small file\n");
        root.write("slow.txt", b"slow file\n");
        root.write("big.bin", &big_content());
        std::fs::create_dir_all(root.0.join("docs")).expect("mkdir");
        symlink("/etc/passwd", root.0.join("passwd")).expect("symlink");
        root
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(rel), bytes).expect("write file");
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn big_content() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect()
}

/// Spawns the helper as the server would, returning our end of its socket.
fn spawn_helper(
    root: &Path,
    env: &[(&str, &str)],
    nonblocking_child_end: bool,
) -> (Child, Channel) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs
        .set_nonblocking(nonblocking_child_end)
        .expect("set mode");
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(HELPER);
    cmd.arg("--root")
        .arg(root)
        .args(["--channel-fd", &fd.to_string(), "--inline-max", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    inherit(&mut cmd, fd);
    let child = spawn_locked(&mut cmd);
    drop(theirs);
    ours.set_read_timeout(Some(WAIT)).expect("timeout");
    (child, Channel::new(ours))
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    tests::child_channel::wait_with_timeout(child, WAIT)
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    err
}

fn handshake(channel: &mut Channel) -> Hello {
    channel
        .send(&ToHelper::Hello(Hello::new(Role::Server)), &[])
        .expect("send hello");
    match channel.recv::<FromHelper>().expect("recv hello") {
        Some(Received {
            message: FromHelper::Hello(hello),
            fds,
        }) if fds.is_empty() => hello,
        other => panic!("expected the helper's hello, got {other:?}"),
    }
}

fn lookup(channel: &mut Channel, id: u64, path: &str) -> Received<FromHelper> {
    let request = ToHelper::Lookup(LookupRequest {
        id,
        path: path.to_string(),
        known: None,
    });
    channel.send(&request, &[]).expect("send lookup");
    let received = channel
        .recv::<FromHelper>()
        .expect("recv reply")
        .expect("a reply");
    match &received.message {
        FromHelper::Lookup(LookupReply { id: got, .. }) => assert_eq!(*got, id),
        other => panic!("expected a lookup reply, got {other:?}"),
    }
    received
}

fn outcome(received: &Received<FromHelper>) -> &Outcome {
    match &received.message {
        FromHelper::Lookup(reply) => &reply.outcome,
        other => panic!("expected a lookup reply, got {other:?}"),
    }
}

#[test]
fn serves_lookups_and_exits_cleanly_on_eof() {
    let root = TempRoot::new("serve");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], false);
    let hello = handshake(&mut channel);
    assert_eq!(hello.version, PROTOCOL_VERSION);
    assert_eq!(hello.role, Role::Helper);
    assert_eq!(hello.pid, child.id());

    let small = lookup(&mut channel, 1, "small.txt");
    assert!(small.fds.is_empty());
    match outcome(&small) {
        Outcome::File {
            meta,
            body: Body::Inline(bytes),
        } => {
            assert_eq!(bytes, b"small file\n");
            assert_eq!(meta.size, 11);
        }
        other => panic!("expected inline, got {other:?}"),
    }

    let big = lookup(&mut channel, 2, "big.bin");
    assert!(matches!(
        outcome(&big),
        Outcome::File {
            body: Body::Descriptor { .. },
            ..
        }
    ));
    let Outcome::File { meta, .. } = *outcome(&big) else {
        unreachable!()
    };
    let mut bytes = Vec::new();
    File::from(big.fds.into_iter().next().expect("a descriptor"))
        .read_to_end(&mut bytes)
        .expect("read passed descriptor");
    assert_eq!(bytes, big_content());

    // The same version again is unchanged, and no descriptor travels.
    let request = ToHelper::Lookup(LookupRequest {
        id: 3,
        path: "big.bin".into(),
        known: Some(meta),
    });
    channel.send(&request, &[]).expect("send");
    let unchanged = channel.recv::<FromHelper>().expect("recv").expect("reply");
    assert_eq!(outcome(&unchanged), &Outcome::Unchanged);
    assert!(unchanged.fds.is_empty());

    assert!(matches!(
        outcome(&lookup(&mut channel, 4, "")),
        Outcome::File { .. }
    ));
    assert_eq!(
        outcome(&lookup(&mut channel, 5, "docs")),
        &Outcome::Directory
    );
    assert_eq!(
        outcome(&lookup(&mut channel, 6, "nope.html")),
        &Outcome::NotFound
    );
    for (id, path) in [
        (7, "passwd"),
        (8, "../etc/passwd"),
        (9, ".hidden"),
        (10, "docs/"),
    ] {
        assert!(
            matches!(
                outcome(&lookup(&mut channel, id, path)),
                Outcome::Forbidden { .. }
            ),
            "{path}"
        );
    }

    drop(channel);
    assert_eq!(wait_with_timeout(&mut child).code(), Some(0));
    assert_eq!(stderr_of(&mut child), "");
}

#[test]
fn a_nonblocking_inherited_socket_still_works() {
    let root = TempRoot::new("nonblock");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], true);
    handshake(&mut channel);
    assert!(matches!(
        outcome(&lookup(&mut channel, 1, "small.txt")),
        Outcome::File { .. }
    ));
    drop(channel);
    assert_eq!(wait_with_timeout(&mut child).code(), Some(0));
}

#[test]
fn eof_before_the_handshake_is_a_clean_exit() {
    let root = TempRoot::new("early-eof");
    let (mut child, channel) = spawn_helper(&root.0, &[], false);
    drop(channel);
    assert_eq!(wait_with_timeout(&mut child).code(), Some(0));
}

fn expect_protocol_error(child: &mut Child) {
    assert_eq!(wait_with_timeout(child).code(), Some(1));
    let err = stderr_of(child);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_version_mismatch_is_a_protocol_error() {
    let root = TempRoot::new("version");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], false);
    let mut hello = Hello::new(Role::Server);
    hello.version = PROTOCOL_VERSION + 1;
    channel.send(&ToHelper::Hello(hello), &[]).expect("send");
    expect_protocol_error(&mut child);
    // The helper said nothing before leaving: end-of-file (or a reset,
    // if our hello was still unread when it closed).
    match channel.recv::<FromHelper>() {
        Ok(None) => {}
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the helper to leave without a word, got {other:?}"),
    }
}

#[test]
fn a_lookup_before_hello_is_a_protocol_error() {
    let root = TempRoot::new("nohello");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], false);
    let request = ToHelper::Lookup(LookupRequest {
        id: 1,
        path: "small.txt".into(),
        known: None,
    });
    channel.send(&request, &[]).expect("send");
    expect_protocol_error(&mut child);
}

#[test]
fn garbage_is_a_protocol_error() {
    let root = TempRoot::new("garbage");
    let (mut child, channel) = spawn_helper(&root.0, &[], false);
    let mut sock = channel.socket();
    sock.write_all(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff])
        .expect("write");
    expect_protocol_error(&mut child);
}

#[test]
fn an_oversized_frame_is_a_protocol_error() {
    let root = TempRoot::new("oversized");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], false);
    handshake(&mut channel);
    channel
        .socket()
        .write_all(&u32::MAX.to_le_bytes())
        .expect("write");
    expect_protocol_error(&mut child);
}

#[test]
fn a_frame_cut_short_is_a_protocol_error() {
    let root = TempRoot::new("truncated");
    let (mut child, mut channel) = spawn_helper(&root.0, &[], false);
    handshake(&mut channel);
    let frame = encode_frame(&ToHelper::Lookup(LookupRequest {
        id: 1,
        path: "small.txt".into(),
        known: None,
    }))
    .expect("encode");
    channel
        .socket()
        .write_all(&frame[..frame.len() - 2])
        .expect("write");
    drop(channel);
    expect_protocol_error(&mut child);
}

/// The delay hook's hold on `slow.txt`.
const DELAY: Duration = Duration::from_secs(8);
/// An unmatched lookup must answer within this. It takes milliseconds; 4 s
/// is generous for a loaded 2-core machine and still only half of
/// [`DELAY`], so a lookup that was held back cannot pass.
const UNDELAYED_MAX: Duration = Duration::from_secs(4);

#[test]
fn the_delay_hook_holds_back_matching_lookups_only() {
    let root = TempRoot::new("delay");
    let hook = format!("slow:{}", DELAY.as_millis());
    let (mut child, mut channel) =
        spawn_helper(&root.0, &[("AMPED_TEST_HELPER_DELAY", &hook)], false);
    handshake(&mut channel);
    let start = Instant::now();
    lookup(&mut channel, 1, "small.txt");
    let unmatched = start.elapsed();
    assert!(
        unmatched < UNDELAYED_MAX,
        "unmatched lookup was delayed ({unmatched:?})"
    );
    let start = Instant::now();
    lookup(&mut channel, 2, "slow.txt");
    let matched = start.elapsed();
    assert!(
        matched >= DELAY,
        "matched lookup was not delayed {DELAY:?} ({matched:?})"
    );
    drop(channel);
    assert_eq!(wait_with_timeout(&mut child).code(), Some(0));
}

#[test]
fn the_helper_dies_with_its_parent() {
    let root = TempRoot::new("pdeathsig");
    // sh starts the helper in the background and exits once we create
    // the gate file, while we still hold our end open: only the
    // parent-death signal can end the helper.
    let gate = root.0.join("gate");
    let (mut sh, ours) = spawn_under_short_lived_parent(Path::new(HELPER), &root.0, &gate);
    ours.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut channel = Channel::new(ours);
    // The helper is up (and has asked for its parent-death signal) once
    // it answers the handshake; only then does its parent exit.
    handshake(&mut channel);
    std::fs::write(&gate, b"").expect("open the gate");
    assert!(wait_with_timeout(&mut sh).success());
    // The helper is dead once its end of the socket is closed.
    match channel.recv::<FromHelper>() {
        Ok(None) => {}
        other => panic!("expected end-of-file from a dead helper, got {other:?}"),
    }
}

#[test]
fn a_bad_channel_fd_is_a_usage_error() {
    let root = TempRoot::new("badfd");
    let out = run(&["--root", path_str(&root.0), "--channel-fd", "999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--channel-fd"));
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn run(args: &[&str]) -> Output {
    Command::new(HELPER)
        .args(args)
        .output()
        .expect("run helper")
}

#[test]
fn standalone_reports_for_a_person() {
    let root = TempRoot::new("standalone");
    let r = path_str(&root.0);

    let out = run(&["--root", r, "/small.txt"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("file: /small.txt\nkind: regular file\nsize: 11 bytes\nmodified: "),
        "{text}"
    );
    assert!(text.contains(" UTC\ninode: "), "{text}");
    assert!(text.ends_with("body: inline (11 bytes)\n"), "{text}");

    let out = run(&["--root", r, "/big.bin"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("body: descriptor (would be passed to the server)"));

    let out = run(&["--root", r, "/nope.html"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "not found: /nope.html\n"
    );

    let out = run(&["--root", r, "/../etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "forbidden: /../etc/passwd (outside the document root)\n"
    );

    let out = run(&["--root", r, "/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("forbidden: /passwd"));

    // No percent-decoding: %2e%2e is just a (missing) file name.
    let out = run(&["--root", r, "/%2e%2e/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("not found: "));

    let out = run(&["--root", r, "/docs"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("directory: /docs"));

    let out = run(&["--root", r, "/"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("index.html"));
}

#[test]
fn standalone_usage_errors_exit_2() {
    let root = TempRoot::new("usage");
    let r = path_str(&root.0);
    assert_eq!(run(&["--root", r]).status.code(), Some(2));
    assert_eq!(run(&["/index.html"]).status.code(), Some(2));
    assert_eq!(
        run(&["--root", r, "--inline-max", "huge", "/x"])
            .status
            .code(),
        Some(2)
    );
    let missing = root.0.join("missing");
    let out = run(&["--root", path_str(&missing), "/index.html"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("document root") && err.contains("No such file"),
        "{err}"
    );
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for word in [
        "--root",
        "--channel-fd",
        "--inline-max",
        "AMPED_TEST_HELPER_DELAY",
        "Exit status",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

#[test]
fn protocol_errors_are_values() {
    // A tiny sanity check that the error type the helper reports is the
    // protocol's: a version mismatch from check_version.
    let mut hello = Hello::new(Role::Server);
    hello.version = 0;
    assert!(matches!(
        hello.check_version(),
        Err(Error::VersionMismatch { .. })
    ));
}

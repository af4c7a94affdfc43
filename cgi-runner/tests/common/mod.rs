//! Shared by the cgi-runner integration tests: temporary roots with small
//! shell scripts, spawning the real binary as the server would, reading
//! its replies and its stderr, and looking for processes in /proc.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::{
    CgiRun, Channel, FromRunner, Hello, Received, Refusal, Role, ToRunner, STARTED_STDIN,
    STARTED_STDOUT,
};

pub const RUNNER: &str = env!("CARGO_BIN_EXE_cgi-runner");

pub use tests::binaries::fork_lock;
pub use tests::child_channel::inherit;

/// How long a read of the runner's channel may wait: a deadline for
/// replies that normally take milliseconds, generous for a loaded 2-core
/// machine; no test expects a reply later than a few seconds.
pub const CHANNEL_TIMEOUT: Duration = Duration::from_secs(30);

/// The time limit given to scripts that should end by themselves at once:
/// long enough that no loaded machine makes them time out.
pub const QUICK_LIMIT_MS: u64 = 120_000;

/// A deadline for waits on things that normally take milliseconds (a
/// process exiting, a group being killed, a line reaching stderr),
/// generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A temporary document root, removed on drop.
pub struct TempRoot(pub PathBuf);

impl TempRoot {
    pub fn new(name: &str) -> TempRoot {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("amped-cgi-it-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cgi-bin")).expect("create temp root");
        TempRoot(dir)
    }

    /// Writes `cgi-bin/NAME`: `#!/bin/sh` and `body`, with `mode`.
    pub fn script(&self, name: &str, body: &str, mode: u32) {
        self.file(
            &format!("cgi-bin/{name}"),
            &format!("#!/bin/sh\n{body}\n"),
            mode,
        );
    }

    /// Writes any file beneath the root.
    pub fn file(&self, rel: &str, content: &str, mode: u32) {
        let _guard = fork_lock();
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub fn path_str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The runner, started as the server starts it, with our end of its
/// channel and everything it writes to stderr.
pub struct Runner {
    pub child: Child,
    pub channel: Channel,
    /// Replies read while looking for another one.
    queue: VecDeque<Received<FromRunner>>,
    /// The runs the runner said it accepted, in order.
    pub accepted: Vec<u64>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

/// A started script's pipe ends, as the server gets them.
pub struct Started {
    pub pid: u32,
    pub stdin: File,
    pub stdout: File,
}

impl Runner {
    /// Spawns `cgi-runner --root ROOT --channel-fd 3` (the socket's number
    /// may differ) with `env` added to ours and `args` appended.
    pub fn spawn(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Runner {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(RUNNER);
        cmd.arg("--root")
            .arg(root)
            .args(["--channel-fd", &fd.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        inherit(&mut cmd, fd);
        let mut child = {
            let _guard = fork_lock();
            cmd.spawn().expect("spawn cgi-runner")
        };
        drop(theirs);
        ours.set_read_timeout(Some(CHANNEL_TIMEOUT))
            .expect("timeout");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Runner {
            child,
            channel: Channel::new(ours),
            queue: VecDeque::new(),
            accepted: Vec::new(),
            stderr,
            stderr_thread: Some(stderr_thread),
        }
    }

    /// Spawns the runner and completes the handshake.
    pub fn ready(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Runner {
        let mut runner = Runner::spawn(root, env, args);
        let hello = runner.handshake();
        assert_eq!(hello.role, Role::CgiRunner);
        assert_eq!(hello.pid, runner.child.id());
        runner
    }

    pub fn handshake(&mut self) -> Hello {
        self.channel
            .send(&ToRunner::Hello(Hello::new(Role::Server)), &[])
            .expect("send hello");
        match self.channel.recv::<FromRunner>().expect("recv hello") {
            Some(Received {
                message: FromRunner::Hello(hello),
                fds,
            }) if fds.is_empty() => hello,
            other => panic!("expected the runner's hello, got {other:?}"),
        }
    }

    /// Asks for a run.
    pub fn send_run(&mut self, id: u64, script: &str, env: &[(&str, &str)], timeout_ms: u64) {
        let run = ToRunner::Run(CgiRun {
            id,
            script: script.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout_ms,
        });
        self.channel.send(&run, &[]).expect("send run");
    }

    /// The next reply about `id`, keeping replies about others for later.
    pub fn reply_for(&mut self, id: u64) -> Received<FromRunner> {
        if let Some(i) = self
            .queue
            .iter()
            .position(|r| id_of(&r.message) == Some(id))
        {
            if let Some(received) = self.queue.remove(i) {
                return received;
            }
        }
        loop {
            let received = self
                .channel
                .recv::<FromRunner>()
                .expect("recv reply")
                .expect("a reply, not end-of-file");
            if let FromRunner::Accepted { id: accepted } = received.message {
                self.accepted.push(accepted);
                continue;
            }
            if id_of(&received.message) == Some(id) {
                return received;
            }
            self.queue.push_back(received);
        }
    }

    /// Starts a script that must start.
    pub fn start(
        &mut self,
        id: u64,
        script: &str,
        env: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Started {
        self.send_run(id, script, env, timeout_ms);
        let received = self.reply_for(id);
        let FromRunner::Started { id: got, pid } = received.message else {
            panic!(
                "expected {script} to start, got {:?}; runner stderr: {}",
                received.message,
                self.stderr_text()
            );
        };
        assert_eq!(got, id);
        assert_eq!(received.fds.len(), 2);
        let mut slots: Vec<Option<std::os::fd::OwnedFd>> =
            received.fds.into_iter().map(Some).collect();
        let (Some(stdin), Some(stdout)) =
            (slots[STARTED_STDIN].take(), slots[STARTED_STDOUT].take())
        else {
            panic!("STARTED_STDIN and STARTED_STDOUT name the same slot")
        };
        // The runner passed the ends the constants promise: the one we
        // write to the script's stdin, the one we read its stdout from.
        assert_eq!(access_mode(&stdin), libc::O_WRONLY, "the stdin end");
        assert_eq!(access_mode(&stdout), libc::O_RDONLY, "the stdout end");
        Started {
            pid,
            stdin: File::from(stdin),
            stdout: File::from(stdout),
        }
    }

    /// Asks for a script that must be refused.
    pub fn refused(&mut self, id: u64, script: &str) -> Refusal {
        self.send_run(id, script, &[], QUICK_LIMIT_MS);
        let received = self.reply_for(id);
        assert!(received.fds.is_empty());
        match received.message {
            FromRunner::Refused { id: got, refusal } => {
                assert_eq!(got, id);
                refusal
            }
            other => panic!("expected {script} to be refused, got {other:?}"),
        }
    }

    /// Waits for the `Exited` of `id`.
    pub fn exited(&mut self, id: u64) -> (protocol::ExitInfo, bool) {
        let received = self.reply_for(id);
        assert!(received.fds.is_empty());
        match received.message {
            FromRunner::Exited {
                exit, timed_out, ..
            } => (exit, timed_out),
            other => panic!("expected the exit of {id}, got {other:?}"),
        }
    }

    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the runner's stderr contains `text`.
    pub fn wait_for_stderr(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.stderr_text();
            if all.contains(text) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "runner stderr never showed {text:?}: {all:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Closes our end and waits for the runner to exit; returns its
    /// status and everything it wrote to stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        // As good as closing it, for the runner: end-of-file.
        let _ = self.channel.socket().shutdown(std::net::Shutdown::Both);
        let status = wait_with_timeout(&mut self.child, WAIT);
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
        (status, self.stderr_text())
    }

    /// The number of descriptors the runner has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn id_of(message: &FromRunner) -> Option<u64> {
    match message {
        FromRunner::Hello(_) | FromRunner::Accepted { .. } => None,
        FromRunner::Started { id, .. }
        | FromRunner::Refused { id, .. }
        | FromRunner::Exited { id, .. } => Some(*id),
    }
}

pub use tests::child_channel::wait_with_timeout;

/// The access mode (`O_RDONLY`, `O_WRONLY`, `O_RDWR`) a descriptor was
/// opened with.
fn access_mode(fd: &impl AsRawFd) -> i32 {
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", std::io::Error::last_os_error());
    flags & libc::O_ACCMODE
}

/// How long [`read_all`] waits for end-of-file: generous for a loaded
/// machine, and shorter than the long sleeps the tests use to tell "ended
/// by the runner" from "ended by itself".
pub const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Reads a pipe end to end-of-file, waiting (with poll(2)) at most
/// [`READ_DEADLINE`] in all; panics, with what it got, if end-of-file
/// does not come by then.
pub fn read_all(mut file: File) -> Vec<u8> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut bytes = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no end-of-file within {READ_DEADLINE:?}; got {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll(2) on one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, millis) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        if ready == 0 {
            continue;
        }
        match file.read(&mut piece) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Kills process group `pgid` (a script and what it started) when
/// dropped, so that a failing test leaves no busy loop or long sleep
/// behind. Harmless when the group is already gone.
pub struct KillGroup(pub u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if group_members(self.0).is_empty() {
            return;
        }
        if let Ok(pgid) = i32::try_from(self.0) {
            if pgid > 1 {
                // SAFETY: kill(2) on a process group a test's script made.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Every process (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp ...; comm may hold anything.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            after.split_whitespace().nth(2) == Some(&pgid.to_string())
        })
        .collect()
}

/// Waits until no process is left in group `pgid`.
pub fn wait_group_gone(pgid: u32, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let members = group_members(pgid);
        if members.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "process group {pgid} still has {members:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a standalone run may take before it is killed: generous for a
/// loaded machine, and shorter than the long sleeps the tests use to tell
/// "killed" from "ended by itself".
pub const STANDALONE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the runner in standalone mode with `stdin` as its input.
pub fn run_standalone(args: &[&str], stdin: &[u8]) -> Output {
    run_standalone_env(args, stdin, &[])
}

/// Runs the runner in standalone mode, in a process group of its own, with
/// `env` added to ours. It must exit, and its stdout and stderr reach
/// end-of-file (so nothing it started still holds them), within
/// [`STANDALONE_DEADLINE`]; otherwise its group and every script of its
/// `--root` are killed and the test panics.
pub fn run_standalone_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(RUNNER);
    cmd.args(args)
        .envs(env.iter().copied())
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = {
        let _guard = fork_lock();
        cmd.spawn().expect("spawn cgi-runner")
    };
    let pgid = child.id();
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    let deadline = Instant::now() + STANDALONE_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            if out.is_finished() && err.is_finished() {
                break status;
            }
        }
        if Instant::now() > deadline {
            kill_standalone(pgid, args);
            let _ = child.wait();
            panic!("cgi-runner {args:?} still running after {STANDALONE_DEADLINE:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Kills a standalone run's process group and its scripts (which run in
/// groups of their own, found by their `DOCUMENT_ROOT`).
fn kill_standalone(pgid: u32, args: &[&str]) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) on the process group we created for the run.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let Some(root) = args
        .iter()
        .position(|a| *a == "--root")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| std::fs::canonicalize(r).ok())
    else {
        return;
    };
    let marker = format!("DOCUMENT_ROOT={}", root.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let holds = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
            .unwrap_or(false);
        if holds {
            // SAFETY: kill(2) on a script of this run.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

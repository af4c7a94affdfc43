//! Builds the workspace binaries once per test process and locates them,
//! starts processes (under the fork lock, or with a descriptor passed at
//! a given number), and runs a one-shot command with a deadline.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR` (relative paths taken from the workspace root) or
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Runs `$CARGO build --bins` once per process and returns `<target>/debug`.
fn debug_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = target_dir();
        let output = Command::new(&cargo)
            .args(["build", "--bins"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} build --bins: {e}"));
        if !output.status.success() {
            panic!(
                "`{} build --bins` failed ({}):\n{}\n{}",
                cargo.to_string_lossy(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        target.join("debug")
    })
}

fn binary(name: &str) -> PathBuf {
    let path = debug_dir().join(name);
    assert!(
        path.is_file(),
        "{} was not produced by `cargo build --bins`",
        path.display()
    );
    path
}

/// The freshly built `server` binary.
pub fn server_bin() -> PathBuf {
    binary("server")
}

/// The freshly built `helper` binary.
pub fn helper_bin() -> PathBuf {
    binary("helper")
}

/// The freshly built `cgi-runner` binary.
pub fn cgi_runner_bin() -> PathBuf {
    binary("cgi-runner")
}

/// Held while this test process writes a file or starts a process: a
/// process forked by another test thread while a script is open for
/// writing holds a copy of that descriptor until it execs, and executing
/// the script meanwhile fails with ETXTBSY.
pub fn fork_lock() -> MutexGuard<'static, ()> {
    static FORK_LOCK: Mutex<()> = Mutex::new(());
    FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `cmd` while holding the [`fork_lock`]; panics, naming the
/// program, if it cannot be started.
pub fn spawn_locked(cmd: &mut Command) -> Child {
    let _guard = fork_lock();
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", cmd.get_program()))
}

/// Makes `command`'s process start with `fd` (a descriptor of this
/// process, close-on-exec as all of them) open as `target` and inherited
/// across exec: a listening socket passed as systemd or HAProxy expects
/// it (`LISTEN_FDS`, `bind fd@3`). `fd` must stay open until the spawn.
pub fn pass_fd_as(command: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: only dup2 and fcntl, async-signal-safe, run between fork and
    // exec.
    unsafe {
        command.pre_exec(move || {
            if fd == target {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a one-shot command did.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    /// Both streams, for messages that may go to either.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Output collected by a background thread; readable at any time.
#[derive(Clone, Default)]
pub(crate) struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(crate) fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }
}

/// Copies `stream` into a [`Collected`] buffer until end-of-file.
pub(crate) fn collect<R: Read + Send + 'static>(
    stream: Option<R>,
) -> (Collected, thread::JoinHandle<()>) {
    let collected = Collected::default();
    let sink = collected.clone();
    let handle = thread::spawn(move || {
        let Some(mut s) = stream else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink.push(&chunk[..n]),
            }
        }
    });
    (collected, handle)
}

pub(crate) fn kill_child(child: &mut Child) {
    let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) with a PID we spawned and have not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Runs `program args...` with stdin closed, collects its output, and kills
/// it (then panics) if it has not exited within `deadline`.
pub fn run_with_deadline<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    deadline: Duration,
) -> RunOutput {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_locked(&mut command);
    let (out, out_thread) = collect(child.stdout.take());
    let (err, err_thread) = collect(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("try_wait on a child") {
            Some(status) => break status,
            None if start.elapsed() > deadline => {
                kill_child(&mut child);
                panic!(
                    "{} {:?} still running after {deadline:?}; killed.\nstdout: {}\nstderr: {}",
                    program.display(),
                    args.iter()
                        .map(|a| a.as_ref().to_owned())
                        .collect::<Vec<_>>(),
                    out.text(),
                    err.text()
                );
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    // Grandchildren (helpers) may hold the pipes a moment longer; wait for
    // end-of-file, but never past the deadline.
    while !(out_thread.is_finished() && err_thread.is_finished()) && start.elapsed() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    RunOutput {
        status,
        stdout: out.text(),
        stderr: err.text(),
    }
}

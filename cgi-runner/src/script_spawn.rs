//! Starting one CGI script with `std::process::Command`.
//!
//! The script gets exactly the environment it is given (plus `PATH`, when
//! that is absent), its own directory as working directory and a process
//! group of its own (so that a time limit can kill it and everything it
//! started at once). No `pre_exec` hook is used, so `Command` can take the
//! faster `posix_spawn` path; resource limits are inherited from the runner
//! (see `limits`). `Command` resets the signal mask and `SIGPIPE` in the
//! script; every descriptor of the runner is close-on-exec, so the script
//! inherits only its three standard streams, and the checked file's
//! descriptor when it is executed through it (see `script_lookup`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use protocol::Refusal;

use crate::script_lookup::Script;

/// The `PATH` a script gets when the environment given has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Where a script's standard streams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// All three piped (child mode: stdin and stdout go to the server).
    Piped,
    /// Stdin piped, stdout and stderr the runner's own (standalone mode).
    InheritOutput,
    /// Stdin empty, stdout and stderr the runner's own (standalone mode).
    OutputOnly,
}

/// Builds the command for `script` with exactly `env` (plus `PATH`).
/// An environment that cannot be passed to `execve` (a name that is
/// empty or holds `=` or NUL, a value with NUL) is refused.
pub fn command(
    script: &Script,
    env: &[(String, String)],
    streams: Streams,
) -> Result<Command, Refusal> {
    for (name, value) in env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            let shown: String = name.chars().take(64).collect();
            return Err(Refusal::ExecFailed(format!(
                "invalid environment variable {shown:?}"
            )));
        }
    }
    let mut cmd = match &script.through {
        Some(through) => {
            let mut cmd = Command::new(format!("/proc/self/fd/{}", through.file.as_raw_fd()));
            cmd.current_dir(format!("/proc/self/fd/{}", through.dir.as_raw_fd()));
            cmd
        }
        None => {
            let mut cmd = Command::new(&script.path);
            cmd.current_dir(&script.dir);
            cmd
        }
    };
    cmd.arg0(&script.path);
    cmd.env_clear();
    cmd.envs(env.iter().map(|(name, value)| (name, value)));
    if !env.iter().any(|(name, _)| name == "PATH") {
        cmd.env("PATH", DEFAULT_PATH);
    }
    cmd.process_group(0);
    match streams {
        Streams::Piped => {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        Streams::InheritOutput | Streams::OutputOnly => {
            let stdin = if streams == Streams::InheritOutput {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            cmd.stdin(stdin)
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        }
    }
    Ok(cmd)
}

/// Starts `cmd` (built by [`command`] for `script`).
pub fn spawn(cmd: &mut Command, script: &Script) -> Result<Child, Refusal> {
    if let Some(fd) = script.through.as_ref().map(|t| &t.file) {
        // Kept open across exec: an interpreter opens the script by that
        // descriptor's name. (The runner starts one script at a time, and
        // the descriptor is closed once this one has started.)
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
            return Err(Refusal::ExecFailed(io::Error::last_os_error().to_string()));
        }
    }
    cmd.spawn().map_err(|e| spawn_refusal(&e, script))
}

/// Says why `execve` (or the fork before it) failed.
fn spawn_refusal(e: &io::Error, script: &Script) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Refusal::Forbidden(format!("permission denied ({e})")),
        Some(libc::ENOENT) => match interpreter(script) {
            Some(interp) => Refusal::ExecFailed(format!("bad interpreter {interp}: {e}")),
            None => Refusal::ExecFailed(e.to_string()),
        },
        Some(libc::ENOEXEC) => {
            Refusal::ExecFailed(format!("not an executable format, no #! line? ({e})"))
        }
        Some(libc::EAGAIN | libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Refusal::Overloaded,
        _ => Refusal::ExecFailed(e.to_string()),
    }
}

/// The interpreter named on the script's `#!` line, if it can be read.
fn interpreter(script: &Script) -> Option<String> {
    let mut head = [0u8; 256];
    let mut file = File::open(&script.path).ok()?;
    let n = file.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    line.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn script() -> Script {
        Script {
            path: PathBuf::from("/nonexistent/x.cgi"),
            dir: PathBuf::from("/nonexistent"),
            through: None,
        }
    }

    #[test]
    fn invalid_environments_are_refused() {
        for (name, value) in [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0y")] {
            let env = vec![(name.to_string(), value.to_string())];
            assert!(
                matches!(
                    command(&script(), &env, Streams::Piped),
                    Err(Refusal::ExecFailed(_))
                ),
                "{name:?}={value:?}"
            );
        }
        let env = vec![("A".to_string(), String::new())];
        assert!(command(&script(), &env, Streams::Piped).is_ok());
    }

    #[test]
    fn path_is_added_only_when_absent() {
        let cmd = command(&script(), &[], Streams::Piped).expect("command");
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            envs,
            vec![(
                std::ffi::OsStr::new("PATH"),
                Some(std::ffi::OsStr::new(DEFAULT_PATH))
            )]
        );
        let env = vec![("PATH".to_string(), "/opt/bin".to_string())];
        let cmd = command(&script(), &env, Streams::Piped).expect("command");
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            envs,
            vec![(
                std::ffi::OsStr::new("PATH"),
                Some(std::ffi::OsStr::new("/opt/bin"))
            )]
        );
    }

    #[test]
    fn spawn_errors_say_why() {
        let err = |code| spawn_refusal(&io::Error::from_raw_os_error(code), &script());
        assert!(matches!(err(libc::EACCES), Refusal::Forbidden(_)));
        assert!(matches!(err(libc::ENOENT), Refusal::ExecFailed(_)));
        assert!(matches!(err(libc::ENOEXEC), Refusal::ExecFailed(_)));
        assert_eq!(err(libc::EMFILE), Refusal::Overloaded);
    }
}

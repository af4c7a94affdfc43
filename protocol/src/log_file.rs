//! The error log as a file (`--error-log PATH`): the file is opened for
//! appending and put on descriptor 2, so that everything a process writes
//! to stderr lands there, and reopened on SIGHUP (after logrotate has
//! renamed it) by a signal handler that only calls `open`, `dup2` and
//! `close`, which are async-signal-safe.
//!
//! The server opens the file itself and names it in [`ENV_VAR`] for its
//! children, which inherit the descriptor and call [`follow_from_env`] at
//! start so that the SIGHUP the server forwards reopens theirs too.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use signal_hook::consts::SIGHUP;

/// The variable that names the error log file for the children.
pub const ENV_VAR: &str = "AMPED_ERROR_LOG";

/// The file's path, for the signal handler; set once.
static PATH: OnceLock<CString> = OnceLock::new();

/// Opens `path` (appending, created mode 0640) onto descriptor 2, and
/// reopens it there on every SIGHUP. Only the first call in a process
/// installs the handler; a later one is refused.
pub fn redirect_stderr(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte"))?;
    if PATH.set(c_path).is_err() {
        return Err(io::Error::other("the error log was already redirected"));
    }
    if !reopen() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the handler calls only open, dup2 and close (async-signal-
    // safe) on a path set before it was installed and never changed.
    unsafe {
        signal_hook::low_level::register(SIGHUP, || {
            let _ = reopen();
        })
    }?;
    Ok(())
}

/// In a child: follows the file the server named in [`ENV_VAR`], if any
/// (descriptor 2 already is that file, inherited). Returns whether one
/// was named.
pub fn follow_from_env() -> io::Result<bool> {
    match std::env::var_os(ENV_VAR) {
        Some(path) if !path.is_empty() => redirect_stderr(Path::new(&path)).map(|()| true),
        _ => Ok(false),
    }
}

/// Opens the file and puts it on descriptor 2. On failure descriptor 2
/// stays as it was. Async-signal-safe.
fn reopen() -> bool {
    let Some(path) = PATH.get() else {
        return false;
    };
    // SAFETY: open, dup2 and close with a NUL-terminated path that lives
    // as long as the process; no memory is allocated.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o640,
        );
        if fd < 0 {
            return false;
        }
        if fd == libc::STDERR_FILENO {
            // Descriptor 2 was closed: the file took its place.
            return libc::fcntl(fd, libc::F_SETFD, 0) >= 0;
        }
        let ok = libc::dup2(fd, libc::STDERR_FILENO) >= 0;
        libc::close(fd);
        ok
    }
}

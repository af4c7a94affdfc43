//! A temporary file with no name, for bytes that must not outlive the
//! process and that nobody else may open: the CGI spool's files, and the
//! start-up check that `--cgi-spool-dir` can hold them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A new temporary file in `dir` with no name: `O_TMPFILE` where the
/// filesystem has it, otherwise a fresh name unlinked at once.
pub(crate) fn open_unlinked(dir: &Path) -> io::Result<File> {
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match tmpfile {
        Ok(file) => return Ok(file),
        // Filesystems without O_TMPFILE say so in one of these ways.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) => {}
        Err(e) => return Err(e),
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".amped-spool-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

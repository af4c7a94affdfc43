//! Finding a script beneath the document root, the way the disk helper
//! finds files.
//!
//! The root is opened once (`O_PATH`). Every script path is checked
//! lexically (no absolute paths, NUL, `..`, `.`, dot-files, empty
//! components or a trailing slash) and then opened beneath the root by the
//! kernel with `openat2` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`
//! (`O_PATH`: nothing is read), so symbolic links that climb out of the root
//! are refused too. Kernels without `openat2` get a walk that canonicalises
//! the path and refuses anything outside the root. The open file is then
//! `fstat`ed: it must be a regular file with an execute bit that applies
//! to us.
//!
//! The script is executed by its real path (read back from
//! `/proc/self/fd`), which names the very file that was checked, rather
//! than by re-walking the request path.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode};
use nix::unistd::{getegid, geteuid, getgroups, Gid};
use protocol::Refusal;

/// Reason given for paths that would leave the root.
pub const OUTSIDE_ROOT: &str = "outside the document root";

/// Reason given for directories, FIFOs, sockets, devices.
pub const NOT_REGULAR: &str = "not a regular file";

/// Reason given for a file without an execute bit for us.
pub const NOT_EXECUTABLE: &str = "not executable";

/// How many times a lookup is retried when `openat2` reports a concurrent
/// rename (`EAGAIN`).
const OPENAT2_RETRIES: usize = 8;

/// The document root could not be used.
#[derive(Debug)]
pub struct RootError {
    root: PathBuf,
    cause: String,
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document root {}: {}", self.root.display(), self.cause)
    }
}

impl std::error::Error for RootError {}

/// A script that passed every check, ready to be executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The absolute path of the checked file.
    pub path: PathBuf,
    /// Its directory: the script's working directory.
    pub dir: PathBuf,
}

/// Resolves script paths beneath one document root.
#[derive(Debug)]
pub struct Resolver {
    root: OwnedFd,
    /// The canonical root.
    root_path: PathBuf,
    /// False when `openat2` is missing (or forbidden by a seccomp filter).
    use_openat2: bool,
}

impl Resolver {
    /// Opens the document root (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    pub fn open(root: &Path) -> Result<Resolver, RootError> {
        let err = |cause: String| RootError {
            root: root.to_path_buf(),
            cause,
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(root, flags, Mode::empty()).map_err(|e| match e {
            Errno::ENOTDIR => err("not a directory".into()),
            e => err(e.desc().to_string()),
        })?;
        let root_path = std::fs::canonicalize(root).map_err(|e| err(e.to_string()))?;
        // Probe once: ENOSYS (old kernel) or EPERM (a seccomp filter that
        // does not know the call) means the walk is used instead.
        let probe = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH);
        let use_openat2 = !matches!(
            openat2(fd.as_fd(), ".", probe),
            Err(Errno::ENOSYS | Errno::EPERM)
        );
        Ok(Resolver {
            root: fd,
            root_path,
            use_openat2,
        })
    }

    /// The canonical document root.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Checks one script path (relative, normalised, no leading slash).
    pub fn resolve(&self, rel: &str) -> Result<Script, Refusal> {
        check_path(rel).map_err(|reason| Refusal::Forbidden(reason.to_string()))?;
        let fd = self.open_beneath(rel).map_err(errno_refusal)?;
        let stat = fstat(fd.as_fd()).map_err(errno_refusal)?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Refusal::Forbidden(NOT_REGULAR.into()));
        }
        if !executable_by_us(&stat) {
            return Err(Refusal::Forbidden(NOT_EXECUTABLE.into()));
        }
        let path = self.real_path(&fd, rel);
        let dir = path
            .parent()
            .map_or_else(|| self.root_path.clone(), Path::to_path_buf);
        Ok(Script { path, dir })
    }

    /// The absolute path of the file open as `fd`, as the kernel knows it;
    /// the root joined with `rel` when `/proc` cannot tell.
    fn real_path(&self, fd: &OwnedFd, rel: &str) -> PathBuf {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match nix::fcntl::readlink(link.as_str()) {
            Ok(target) => {
                let target = PathBuf::from(target);
                if target.starts_with(&self.root_path) {
                    return target;
                }
                self.root_path.join(rel)
            }
            Err(_) => self.root_path.join(rel),
        }
    }

    /// Opens `rel` (already checked by [`check_path`]) beneath the root,
    /// `O_PATH`.
    fn open_beneath(&self, rel: &str) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if self.use_openat2 {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let mut attempts = 0;
            loop {
                match openat2(self.root.as_fd(), rel, how) {
                    Err(Errno::EINTR) => continue,
                    // A concurrent rename made the kernel give up; try again.
                    Err(Errno::EAGAIN) if attempts < OPENAT2_RETRIES => attempts += 1,
                    Err(Errno::ENOSYS) => break,
                    result => return result,
                }
            }
        }
        self.open_walk(rel, flags)
    }

    /// The fallback for kernels without `openat2`: canonicalise, refuse
    /// anything outside the root, then open the canonical path relative to
    /// the root without following a final symbolic link.
    fn open_walk(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let canonical = std::fs::canonicalize(self.root_path.join(rel))
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        let inside = canonical
            .strip_prefix(&self.root_path)
            .map_err(|_| Errno::EXDEV)?;
        if inside.as_os_str().is_empty() {
            // The root itself: a directory.
            return Err(Errno::EISDIR);
        }
        loop {
            match openat(
                self.root.as_fd(),
                inside,
                flags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            ) {
                Err(Errno::EINTR) => continue,
                result => return result,
            }
        }
    }
}

/// The lexical checks every script path goes through before it reaches the
/// filesystem. Returns the reason for a refusal.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.contains('\0') {
        return Err("invalid path (NUL byte)");
    }
    if path.starts_with('/') {
        return Err(OUTSIDE_ROOT);
    }
    if path.is_empty() {
        return Err("invalid path (empty)");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("invalid path (empty component)"),
            ".." => return Err(OUTSIDE_ROOT),
            "." => return Err("invalid path (`.` component)"),
            c if c.starts_with('.') => return Err("hidden file"),
            _ => {}
        }
    }
    Ok(())
}

/// Maps an `open` or `fstat` error to a refusal.
fn errno_refusal(e: Errno) -> Refusal {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG => Refusal::NotFound,
        Errno::EXDEV | Errno::ELOOP => Refusal::Forbidden(OUTSIDE_ROOT.into()),
        Errno::EACCES | Errno::EPERM => Refusal::Forbidden("permission denied".into()),
        Errno::EISDIR => Refusal::Forbidden(NOT_REGULAR.into()),
        e => Refusal::ExecFailed(e.desc().to_string()),
    }
}

/// True when an execute permission bit of `stat` applies to this process
/// (for root: any execute bit, as `execve` requires).
fn executable_by_us(stat: &FileStat) -> bool {
    let mode = stat.st_mode;
    let euid = geteuid();
    if euid.is_root() {
        return mode & (libc::S_IXUSR | libc::S_IXGRP | libc::S_IXOTH) != 0;
    }
    if stat.st_uid == euid.as_raw() {
        return mode & libc::S_IXUSR != 0;
    }
    let gid = Gid::from_raw(stat.st_gid);
    let in_group = gid == getegid() || getgroups().is_ok_and(|groups| groups.contains(&gid));
    if in_group {
        return mode & libc::S_IXGRP != 0;
    }
    mode & libc::S_IXOTH != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_checks() {
        for good in ["cgi-bin/env.cgi", "x.cgi", "a/b/c..d.cgi", "a/b.c/d"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("/etc/passwd", OUTSIDE_ROOT),
            ("../x.cgi", OUTSIDE_ROOT),
            ("a/../x.cgi", OUTSIDE_ROOT),
            (".x.cgi", "hidden file"),
            ("cgi-bin/.hidden.cgi", "hidden file"),
            (".git/hooks/x", "hidden file"),
        ] {
            assert_eq!(check_path(bad), Err(reason), "{bad}");
        }
        for bad in ["", "a//b.cgi", "cgi-bin/", "./x.cgi", "x\0.cgi"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_map_to_refusals() {
        assert_eq!(errno_refusal(Errno::ENOENT), Refusal::NotFound);
        assert_eq!(errno_refusal(Errno::ENOTDIR), Refusal::NotFound);
        assert_eq!(
            errno_refusal(Errno::EXDEV),
            Refusal::Forbidden(OUTSIDE_ROOT.into())
        );
        assert!(matches!(
            errno_refusal(Errno::EACCES),
            Refusal::Forbidden(_)
        ));
        assert!(matches!(errno_refusal(Errno::EIO), Refusal::ExecFailed(_)));
    }
}

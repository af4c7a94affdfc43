//! Finding a CGI script beneath the document root, the way the disk
//! helper finds files.
//!
//! The root is opened once (`O_PATH`). Every script path is checked
//! lexically (no absolute paths, NUL, `..`, `.`, dot-files, empty
//! components or a trailing slash) and then opened beneath the root by the
//! kernel with `openat2` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`
//! (`O_PATH`: nothing is read), so symbolic links that climb out of the root
//! are refused too. Kernels without `openat2` get a walk that canonicalises
//! the path and refuses anything outside the root. (The checks and the
//! open are [`protocol::beneath`], shared with the disk helper.) The open
//! file is then `fstat`ed: it must be a regular file with an execute bit
//! that applies to us.
//!
//! The script is executed by its real path (read back from
//! `/proc/self/fd`), which names the very file that was checked, rather
//! than by re-walking the request path.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, FileStat};
use nix::unistd::{getegid, geteuid, getgroups, Gid};
use protocol::beneath::{check_components, check_relative, Root, RootError, OUTSIDE_ROOT};
use protocol::Refusal;

/// Reason given for directories, FIFOs, sockets, devices.
pub const NOT_REGULAR: &str = "not a regular file";

/// Reason given for a file without an execute bit for us.
pub const NOT_EXECUTABLE: &str = "not executable";

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
    root: Root,
}

impl Resolver {
    /// Opens the document root (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    pub fn open(root: &Path) -> Result<Resolver, RootError> {
        Ok(Resolver {
            root: Root::open(root)?,
        })
    }

    /// The canonical document root.
    pub fn root_path(&self) -> &Path {
        self.root.path()
    }

    /// Forces the fallback walk (for tests of the walk itself).
    #[cfg(test)]
    fn force_walk(&self) {
        self.root.force_walk();
    }

    /// Checks one script path (relative, normalised, no leading slash).
    pub fn resolve(&self, rel: &str) -> Result<Script, Refusal> {
        check_path(rel).map_err(|reason| Refusal::Forbidden(reason.to_string()))?;
        // O_PATH: nothing is read.
        let fd = self
            .root
            .open_beneath(rel, OFlag::O_PATH | OFlag::O_CLOEXEC)
            .map_err(errno_refusal)?;
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
            .map_or_else(|| self.root_path().to_path_buf(), Path::to_path_buf);
        Ok(Script { path, dir })
    }

    /// The absolute path of the file open as `fd`, as the kernel knows it;
    /// the root joined with `rel` when `/proc` cannot tell.
    fn real_path(&self, fd: &OwnedFd, rel: &str) -> PathBuf {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match nix::fcntl::readlink(link.as_str()) {
            Ok(target) => {
                let target = PathBuf::from(target);
                if target.starts_with(self.root_path()) {
                    return target;
                }
                self.root_path().join(rel)
            }
            Err(_) => self.root_path().join(rel),
        }
    }
}

/// The lexical checks every script path goes through before it reaches the
/// filesystem. Returns the reason for a refusal.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    check_relative(path)?;
    if path.is_empty() {
        return Err("invalid path (empty)");
    }
    check_components(path)
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
    fn the_root_itself_is_not_a_script() {
        let dir = std::env::temp_dir().join(format!("amped-runner-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp root");
        std::os::unix::fs::symlink(".", dir.join("here.cgi")).expect("symlink");
        // Through openat2, then through the fallback walk.
        for walk in [false, true] {
            let r = Resolver::open(&dir).expect("open root");
            if walk {
                r.force_walk();
            }
            assert_eq!(
                r.resolve("here.cgi"),
                Err(Refusal::Forbidden(NOT_REGULAR.into())),
                "walk: {walk}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
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

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
//! than by re-walking the request path, so that `$0` is that path. That
//! path could still be changed between the check and the `execve` by
//! whoever may rename entries of a directory on it; when anyone but the
//! directory's owner (and root) may ([`swappable`]), the script is instead
//! executed through the descriptor that was checked (`/proc/self/fd/N`):
//! the race is closed, and an interpreted script's `$0` is then that
//! name (`SCRIPT_FILENAME` still has the real path).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

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
#[derive(Debug)]
pub struct Script {
    /// The absolute path of the checked file.
    pub path: PathBuf,
    /// Its directory: the script's working directory.
    pub dir: PathBuf,
    /// What to execute through when the path could be changed by others
    /// before the script starts.
    pub through: Option<Through>,
}

/// The checked file and its directory, each open (`O_PATH`), for a script
/// executed through descriptors rather than by its path.
#[derive(Debug)]
pub struct Through {
    pub file: OwnedFd,
    /// The script's directory, opened beneath the root: its working
    /// directory.
    pub dir: OwnedFd,
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
        let (path, real) = self.real_path(&fd, rel);
        let dir = path
            .parent()
            .map_or_else(|| self.root_path().to_path_buf(), Path::to_path_buf);
        // Without /proc neither the real path nor the descriptor's name is
        // known: the path joined is all there is.
        let through = if real && swappable(&path) {
            let parent = rel.rsplit_once('/').map_or(".", |(dir, _)| dir);
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let dir = self
                .root
                .open_beneath(parent, flags)
                .map_err(errno_refusal)?;
            Some(Through { file: fd, dir })
        } else {
            None
        };
        Ok(Script { path, dir, through })
    }

    /// The absolute path of the file open as `fd`, as the kernel knows it,
    /// and true; the root joined with `rel` and false when `/proc` cannot
    /// tell.
    fn real_path(&self, fd: &OwnedFd, rel: &str) -> (PathBuf, bool) {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match nix::fcntl::readlink(link.as_str()) {
            Ok(target) => {
                let target = PathBuf::from(target);
                if target.starts_with(self.root_path()) {
                    return (target, true);
                }
                (self.root_path().join(rel), false)
            }
            Err(_) => (self.root_path().join(rel), false),
        }
    }
}

/// True when an entry on the absolute, symlink-free `path` could be
/// replaced by someone other than root, the directory's owner and this
/// process's user: a directory on it is writable by its group or by
/// others, and not sticky with the entry owned by one of those (a sticky
/// directory lets only an entry's owner rename it). Also true when a
/// directory on it cannot be looked at.
pub fn swappable(path: &Path) -> bool {
    let euid = geteuid().as_raw();
    let mut entry = PathBuf::from("/");
    let Ok(mut dir) = std::fs::metadata(&entry) else {
        return true;
    };
    for component in path.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        entry.push(name);
        // The path has no links: what stands here is the next directory.
        let Ok(child) = std::fs::symlink_metadata(&entry) else {
            return true;
        };
        if !entry_is_fixed(dir.mode(), child.uid(), &[0, euid, dir.uid()]) {
            return true;
        }
        dir = child;
    }
    false
}

/// Whether an entry owned by `entry_owner` in a directory of mode
/// `dir_mode` can be renamed only by `trusted` users.
fn entry_is_fixed(dir_mode: u32, entry_owner: u32, trusted: &[u32]) -> bool {
    let others_write = dir_mode & (libc::S_IWGRP | libc::S_IWOTH) != 0;
    let sticky = dir_mode & libc::S_ISVTX != 0;
    !others_write || (sticky && trusted.contains(&entry_owner))
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
                r.resolve("here.cgi").err(),
                Some(Refusal::Forbidden(NOT_REGULAR.into())),
                "walk: {walk}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_is_fixed_when_only_trusted_users_may_rename_it() {
        let trusted = [0, 33];
        assert!(entry_is_fixed(0o755, 1000, &trusted), "no write for others");
        assert!(entry_is_fixed(0o700, 1000, &trusted));
        assert!(!entry_is_fixed(0o775, 33, &trusted), "group may rename");
        assert!(!entry_is_fixed(0o757, 0, &trusted), "others may rename");
        assert!(entry_is_fixed(0o1777, 0, &trusted), "sticky, root's entry");
        assert!(entry_is_fixed(0o1777, 33, &trusted), "sticky, our entry");
        assert!(
            !entry_is_fixed(0o1777, 1000, &trusted),
            "sticky, another's entry"
        );
    }

    #[test]
    fn a_path_with_a_directory_anyone_may_write_is_swappable() {
        let dir = std::env::temp_dir().join(format!("amped-swappable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("open/inner")).expect("mkdir");
        let set_mode = |p: &Path, mode| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        set_mode(&dir, 0o755);
        set_mode(&dir.join("open"), 0o755);
        let dir = std::fs::canonicalize(&dir).expect("canonical");
        // (The test's temporary directory itself may be anyone's to write:
        // only what is below it is compared.)
        let base = swappable(&dir.join("open/inner"));
        set_mode(&dir.join("open"), 0o777);
        assert!(
            swappable(&dir.join("open/inner")),
            "open/ is anyone's to write"
        );
        set_mode(&dir.join("open"), 0o755);
        assert_eq!(swappable(&dir.join("open/inner")), base);
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

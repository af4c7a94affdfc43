//! Opening a path beneath a root, refusing escapes.
//!
//! The disk helpers (files) and the CGI runner (scripts) both serve paths
//! beneath a document root, which is opened once (`O_PATH`). A path is
//! checked lexically first ([`check_relative`], [`check_components`]: no
//! NUL, no absolute path, no empty, `.`, `..` or hidden component), then
//! opened beneath the root by the kernel with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so that symbolic links that
//! climb out of the root are refused too. Kernels without `openat2` (or
//! with a seccomp filter that does not know it) get a walk that
//! canonicalises the path and refuses anything outside the root.
//!
//! The dot-file rule holds through links too: what the open reached is
//! read back (`/proc/self/fd`), and a target with a hidden component
//! within the root (a link to `.env`, or into `.git/`) is refused with
//! `EACCES`, as the dot-file itself would be. Without `/proc` (a bare
//! chroot) only the lexical rule on the request path holds.
//!
//! What a refusal means to the caller (an HTTP 403 or 404, a refused
//! script) is left to the caller: the open reports a plain [`Errno`],
//! `EXDEV` or `ELOOP` for a path that would leave the root.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Reason given for paths that would leave the root.
pub const OUTSIDE_ROOT: &str = "outside the document root";

/// How many times a lookup is retried when `openat2` reports a concurrent
/// rename (`EAGAIN`).
const OPENAT2_RETRIES: usize = 8;

/// The document root could not be used.
#[derive(Debug, thiserror::Error)]
#[error("document root {}: {cause}", root.display())]
pub struct RootError {
    root: PathBuf,
    cause: String,
}

/// An open root directory beneath which paths are opened.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// The canonical root, for the fallback walk and for callers that need
    /// an absolute path.
    path: PathBuf,
    /// False once `openat2` turned out to be missing (or forbidden by a
    /// seccomp filter): every open then uses the walk.
    use_openat2: AtomicBool,
}

impl Root {
    /// Opens the root directory (`O_PATH | O_DIRECTORY | O_CLOEXEC`) and
    /// finds out whether `openat2` can be used.
    pub fn open(root: &Path) -> Result<Root, RootError> {
        let err = |cause: String| RootError {
            root: root.to_path_buf(),
            cause,
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(root, flags, Mode::empty()).map_err(|e| match e {
            Errno::ENOTDIR => err("not a directory".into()),
            e => err(e.desc().to_string()),
        })?;
        let path = std::fs::canonicalize(root).map_err(|e| err(e.to_string()))?;
        // Probe once: an O_PATH open of the root itself always works when
        // openat2 does. ENOSYS (old kernel) or EPERM (a seccomp filter that
        // does not know the call) means the walk is used instead.
        let probe = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH);
        let use_openat2 = !matches!(
            openat2(fd.as_fd(), ".", probe),
            Err(Errno::ENOSYS | Errno::EPERM)
        );
        Ok(Root {
            fd,
            path,
            use_openat2: AtomicBool::new(use_openat2),
        })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when opens go through `openat2` (false: the fallback walk).
    pub fn uses_openat2(&self) -> bool {
        self.use_openat2.load(Ordering::Relaxed)
    }

    /// Makes every later open use the fallback walk (for tests of the walk
    /// itself).
    pub fn force_walk(&self) {
        self.use_openat2.store(false, Ordering::Relaxed);
    }

    /// Opens `rel` beneath the root with `flags` (for example `O_RDONLY |
    /// O_CLOEXEC`, or `O_PATH | O_CLOEXEC` when nothing is to be read).
    /// `rel` should have passed the lexical checks; the root itself is
    /// `.`. A path that would leave the root fails with `EXDEV` or `ELOOP`.
    pub fn open_beneath(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let fd = self.open_resolved(rel, flags)?;
        match self.reached_hidden(&fd)? {
            true => Err(Errno::EACCES),
            false => Ok(fd),
        }
    }

    /// True when `fd`, opened beneath the root, is (or lies inside) a
    /// hidden file or directory of the root: a symbolic link led there.
    fn reached_hidden(&self, fd: &OwnedFd) -> Result<bool, Errno> {
        use std::os::fd::AsRawFd;
        let reached = match std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
            Ok(reached) => reached,
            // No /proc here (a bare chroot): only the lexical rule holds.
            Err(_) if !Path::new("/proc/self/fd").is_dir() => return Ok(false),
            Err(e) => return Err(io_errno(&e)),
        };
        let inside = reached.strip_prefix(&self.path).map_err(|_| Errno::EXDEV)?;
        Ok(inside
            .iter()
            .any(|c| c.as_encoded_bytes().first() == Some(&b'.')))
    }

    /// [`open_beneath`](Self::open_beneath) without the hidden-target check.
    fn open_resolved(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        if self.uses_openat2() {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let mut attempts = 0;
            loop {
                match openat2(self.fd.as_fd(), rel, how) {
                    Err(Errno::EINTR) => continue,
                    // A concurrent rename made the kernel give up; try again.
                    Err(Errno::EAGAIN) if attempts < OPENAT2_RETRIES => attempts += 1,
                    Err(Errno::ENOSYS) => {
                        self.force_walk();
                        break;
                    }
                    result => return result,
                }
            }
        }
        self.open_walk(rel, flags)
    }

    /// The fallback for kernels without `openat2`: canonicalise, refuse
    /// anything outside the root, then open the canonical path relative to
    /// the root without following a final symbolic link. (A symlink swapped
    /// in between the two steps makes the open fail, never escape, for the
    /// last component; intermediate components are only as safe as the
    /// canonicalisation, which is why openat2 is preferred.)
    fn open_walk(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let full = self.path.join(rel);
        let canonical = std::fs::canonicalize(full).map_err(|e| io_errno(&e))?;
        let inside = canonical
            .strip_prefix(&self.path)
            .map_err(|_| Errno::EXDEV)?;
        let inside: &Path = if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        };
        loop {
            match openat(
                self.fd.as_fd(),
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

/// The errno behind an I/O error (`EIO` when there is none).
fn io_errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The lexical checks on a path as a whole: no NUL byte, not absolute.
/// Returns the reason for a refusal.
pub fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.contains('\0') {
        return Err("invalid path (NUL byte)");
    }
    if path.starts_with('/') {
        return Err(OUTSIDE_ROOT);
    }
    Ok(())
}

/// The lexical checks on each `/`-separated component of `rel`: none may
/// be empty, `.`, `..` or hidden (start with a dot). Returns the reason
/// for a refusal.
pub fn check_components(rel: &str) -> Result<(), &'static str> {
    for component in rel.split('/') {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// A fresh directory to serve as a root (one per test, by name),
    /// removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("amped-beneath-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("d")).expect("create scratch root");
            Scratch(dir)
        }

        /// The root opened twice: through openat2, and forced to the walk.
        fn roots(&self) -> [Root; 2] {
            let walk = Root::open(&self.0).expect("open root");
            walk.force_walk();
            [Root::open(&self.0).expect("open root"), walk]
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(fd: OwnedFd) -> Vec<u8> {
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut bytes)
            .expect("read");
        bytes
    }

    #[test]
    fn lexical_checks() {
        for good in ["", "a", "a/b.txt", "a..b/c...d", "cgi-bin/x.cgi"] {
            assert_eq!(check_relative(good), Ok(()), "{good:?}");
        }
        assert_eq!(check_relative("/etc/passwd"), Err(OUTSIDE_ROOT));
        assert_eq!(check_relative("/"), Err(OUTSIDE_ROOT));
        assert_eq!(check_relative("a\0b"), Err("invalid path (NUL byte)"));
        // NUL is looked for first.
        assert_eq!(check_relative("/\0"), Err("invalid path (NUL byte)"));

        for good in ["a", "a/b.txt", "a..b/c...d", "a/b.c/d"] {
            assert_eq!(check_components(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("", "invalid path (empty component)"),
            ("a//b", "invalid path (empty component)"),
            ("a/", "invalid path (empty component)"),
            ("..", OUTSIDE_ROOT),
            ("a/../b", OUTSIDE_ROOT),
            (".", "invalid path (`.` component)"),
            ("./a", "invalid path (`.` component)"),
            (".secret", "hidden file"),
            ("a/.htpasswd", "hidden file"),
            (".git/config", "hidden file"),
        ] {
            assert_eq!(check_components(bad), Err(reason), "{bad:?}");
        }
    }

    #[test]
    fn the_kernel_has_openat2() {
        let root = Scratch::new("probe");
        let r = Root::open(&root.0).expect("open root");
        assert!(r.uses_openat2());
        r.force_walk();
        assert!(!r.uses_openat2());
    }

    #[test]
    fn a_missing_or_plain_root_is_an_error() {
        let root = Scratch::new("badroot");
        std::fs::write(root.0.join("file"), b"x").expect("write");
        let missing = Root::open(&root.0.join("missing")).expect_err("missing root");
        assert!(missing.to_string().contains("No such file"), "{missing}");
        let plain = Root::open(&root.0.join("file")).expect_err("plain file root");
        assert!(plain.to_string().contains("not a directory"), "{plain}");
        assert!(plain.to_string().starts_with("document root "), "{plain}");
    }

    #[test]
    fn files_and_links_inside_the_root_open() {
        let root = Scratch::new("inside");
        std::fs::write(root.0.join("page.html"), b"page").expect("write");
        symlink("page.html", root.0.join("alias.html")).expect("symlink");
        symlink("../page.html", root.0.join("d/up.html")).expect("symlink");
        symlink(".", root.0.join("here")).expect("symlink");
        let canonical = std::fs::canonicalize(&root.0).expect("canonicalize");
        for r in root.roots() {
            assert_eq!(r.path(), canonical);
            let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            for path in ["page.html", "alias.html", "d/up.html"] {
                let fd = r.open_beneath(path, flags).expect(path);
                assert_eq!(read(fd), b"page", "{path}");
            }
            // The root itself, by name or through a link, is a directory.
            for path in [".", "here"] {
                let fd = r
                    .open_beneath(path, OFlag::O_PATH | OFlag::O_CLOEXEC)
                    .expect(path);
                let stat = nix::sys::stat::fstat(fd.as_fd()).expect("fstat");
                assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFDIR, "{path}");
            }
            assert_eq!(r.open_beneath("nope", flags).err(), Some(Errno::ENOENT));
        }
    }

    #[test]
    fn links_out_of_the_root_are_refused() {
        let root = Scratch::new("escape");
        symlink("/etc/passwd", root.0.join("abs")).expect("symlink");
        symlink("../../../../../../../../etc/passwd", root.0.join("d/rel")).expect("symlink");
        symlink("/etc", root.0.join("etc")).expect("symlink");
        symlink("/proc/self/root/etc/passwd", root.0.join("magic")).expect("symlink");
        for r in root.roots() {
            for flags in [OFlag::O_RDONLY, OFlag::O_PATH] {
                for path in ["abs", "d/rel", "etc/passwd", "magic"] {
                    let err = r
                        .open_beneath(path, flags | OFlag::O_CLOEXEC)
                        .expect_err(path);
                    assert!(matches!(err, Errno::EXDEV | Errno::ELOOP), "{path}: {err}");
                }
            }
        }
    }
}

//! Path resolution: one request path in, one [`Outcome`] out.
//!
//! The root is opened once (`O_PATH`). Every request path is checked
//! lexically (no absolute paths, NUL, `..`, dot-files or empty components)
//! and then opened beneath the root by the kernel with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so symbolic links that climb
//! out of the root are refused too. Kernels without `openat2` get a walk
//! that canonicalises the path and refuses anything outside the root.
//! (The checks and the open are [`protocol::beneath`], shared with the
//! CGI runner.)
//!
//! Small files come back inline (their bytes); large ones as the open
//! descriptor, with the kind of storage the file lives on
//! ([`protocol::Storage`]), which tells the server whether it may check
//! the file's pages for residency before sending them. Reading ahead is
//! the server's to ask for, window by window ([`crate::window_read`]).

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use protocol::beneath::{check_components, check_relative, Root, RootError, OUTSIDE_ROOT};
use protocol::{Body, FileMeta, Outcome, Storage};

use crate::listing;

/// The name served for a path with a trailing slash.
pub const INDEX_FILE: &str = "index.html";

/// Reason given for a directory asked for its index when it has none.
pub const NO_INDEX: &str = "directory has no index.html";

/// Reason given for FIFOs, sockets, devices and the like.
pub const NOT_REGULAR: &str = "not a regular file";

/// Size of one `pread` when reading a small file.
const READ_CHUNK: usize = 64 * 1024;

/// The result of one lookup. `fd` is set exactly when the outcome is a
/// file with [`Body::Descriptor`].
#[derive(Debug)]
pub struct Resolution {
    pub outcome: Outcome,
    pub fd: Option<OwnedFd>,
}

impl Resolution {
    fn of(outcome: Outcome) -> Self {
        Resolution { outcome, fd: None }
    }

    fn forbidden(reason: &str) -> Self {
        Self::of(Outcome::Forbidden {
            reason: reason.to_string(),
        })
    }
}

/// Resolves request paths beneath one document root.
#[derive(Debug)]
pub struct Resolver {
    root: Root,
    inline_max: u64,
    /// List a directory that has no index instead of refusing it.
    dir_listing: bool,
}

impl Resolver {
    /// Opens the document root (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    pub fn open(root: &Path, inline_max: u64) -> Result<Resolver, RootError> {
        Ok(Resolver {
            root: Root::open(root)?,
            inline_max,
            dir_listing: false,
        })
    }

    /// Lists directories without an index (`--dir-listing`) when `on`.
    pub fn with_listing(mut self, on: bool) -> Resolver {
        self.dir_listing = on;
        self
    }

    /// True when lookups go through `openat2` (false: the fallback walk).
    #[cfg(test)]
    fn uses_openat2(&self) -> bool {
        self.root.uses_openat2()
    }

    /// Forces the fallback walk (for tests of the walk itself).
    #[cfg(test)]
    fn force_walk(&self) {
        self.root.force_walk();
    }

    /// Resolves one request path (relative, no leading slash; a trailing
    /// slash, or the empty path, asks for the directory's index).
    pub fn resolve(&self, path: &str, known: Option<FileMeta>) -> Resolution {
        let (file, meta) = match self.open_regular(path) {
            Ok(found) => found,
            Err(resolution) => return resolution,
        };
        if known == Some(meta) {
            return Resolution::of(Outcome::Unchanged);
        }
        self.answer(file, meta)
    }

    /// Opens the regular file `path` names again, for a window read, if it
    /// is still the version `known`.
    pub fn reopen(&self, path: &str, known: FileMeta) -> Result<File, String> {
        match self.open_regular(path) {
            Ok((file, meta)) if meta == known => Ok(file),
            Ok(_) => Err(format!("/{path} changed while it was being sent")),
            Err(resolution) => Err(format!(
                "/{path} cannot be opened again: {:?}",
                resolution.outcome
            )),
        }
    }

    /// Opens the regular file a request path names, or says why not.
    fn open_regular(&self, path: &str) -> Result<(File, FileMeta), Resolution> {
        let target = check_path(path).map_err(Resolution::forbidden)?;
        let (file, stat) = match self.open_node(target.rel) {
            Ok(Node::Dir) if !target.wants_index => return Err(Resolution::of(Outcome::Directory)),
            Ok(Node::Dir) => {
                let index = if target.rel == "." {
                    INDEX_FILE.to_string()
                } else {
                    format!("{}/{INDEX_FILE}", target.rel)
                };
                match self.open_node(&index) {
                    Ok(Node::File(file, stat)) => (file, stat),
                    Ok(Node::Dir | Node::Special) => {
                        return Err(Resolution::forbidden(NOT_REGULAR))
                    }
                    Err(Errno::ENOENT | Errno::ENOTDIR) if self.dir_listing => {
                        return Err(self.listing(target.rel))
                    }
                    Err(Errno::ENOENT | Errno::ENOTDIR) => {
                        return Err(Resolution::forbidden(NO_INDEX))
                    }
                    Err(e) => return Err(Resolution::of(errno_outcome(e))),
                }
            }
            Ok(Node::File(_, _)) if target.wants_index => {
                return Err(Resolution::of(Outcome::NotFound))
            }
            Ok(Node::File(file, stat)) => (file, stat),
            Ok(Node::Special) => return Err(Resolution::forbidden(NOT_REGULAR)),
            Err(e) => return Err(Resolution::of(errno_outcome(e))),
        };
        if !stat.is_file() {
            return Err(Resolution::forbidden(NOT_REGULAR));
        }
        Ok((file, file_meta(&stat)))
    }

    /// The listing of the directory `rel` (already checked), opened
    /// beneath the root like any file.
    fn listing(&self, rel: &str) -> Resolution {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let listed = self
            .root
            .open_beneath(rel, flags)
            .and_then(|dir| listing::list(&self.root, rel, dir));
        Resolution::of(listed.unwrap_or_else(errno_outcome))
    }

    /// Builds the answer for an open regular file: its bytes, or the
    /// descriptor itself.
    fn answer(&self, file: File, mut meta: FileMeta) -> Resolution {
        if meta.size <= self.inline_max {
            match read_up_to(&file, self.inline_max) {
                Ok(bytes) if bytes.len() as u64 <= self.inline_max => {
                    meta.size = bytes.len() as u64;
                    return Resolution::of(Outcome::File {
                        meta,
                        body: Body::Inline(bytes),
                    });
                }
                // The file grew past the inline limit while we read it:
                // pass the descriptor instead, with fresh metadata.
                Ok(_) => match file.metadata() {
                    Ok(stat) => meta = file_meta(&stat),
                    Err(e) => return failed(&e),
                },
                Err(e) => return failed(&e),
            }
        }
        match storage_of(&file) {
            // The server would have to close it, and a close can wait on
            // such a filesystem: it asks for windows by path instead.
            Storage::Uncertain => Resolution::of(Outcome::File {
                meta,
                body: Body::ByPath,
            }),
            storage => Resolution {
                outcome: Outcome::File {
                    meta,
                    body: Body::Descriptor { storage },
                },
                fd: Some(OwnedFd::from(file)),
            },
        }
    }

    /// Opens `rel` (already checked by [`check_path`]) beneath the root
    /// and tells a directory from a regular file from anything else. The
    /// path is opened `O_PATH` and `fstat`ed first, so a FIFO, a socket
    /// or a device is never opened for reading (some devices act on an
    /// open); only a regular file is then reopened for reading, through
    /// the `O_PATH` descriptor, so it is the very file checked. A
    /// directory that may be searched but not listed (mode 0711) is still
    /// a directory: its index may be readable.
    fn open_node(&self, rel: &str) -> Result<Node, Errno> {
        let path_only = self
            .root
            .open_beneath(rel, OFlag::O_PATH | OFlag::O_CLOEXEC)?;
        let stat = nix::sys::stat::fstat(path_only.as_fd())?;
        match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Ok(Node::Dir),
            libc::S_IFREG => {
                let file = self.reopen_for_reading(&path_only, rel)?;
                let meta = file.metadata().map_err(|e| io_errno(&e))?;
                // The same inode, whichever way it was reopened.
                if meta.dev() != stat.st_dev || meta.ino() != stat.st_ino {
                    return Err(Errno::ESTALE);
                }
                Ok(Node::File(file, meta))
            }
            _ => Ok(Node::Special),
        }
    }

    /// Opens for reading the regular file `path_only` (an `O_PATH`
    /// descriptor of `rel`) names: through `/proc/self/fd`, or where
    /// `/proc` is missing, by `rel` again (the caller checks the inode).
    fn reopen_for_reading(&self, path_only: &OwnedFd, rel: &str) -> Result<File, Errno> {
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let link = format!("/proc/self/fd/{}", path_only.as_raw_fd());
        match nix::fcntl::open(link.as_str(), flags, nix::sys::stat::Mode::empty()) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::ENOENT) => self.root.open_beneath(rel, flags).map(File::from),
            Err(e) => Err(e),
        }
    }
}

/// What a path names, once looked at.
#[derive(Debug)]
enum Node {
    /// A directory (its descriptor is not needed).
    Dir,
    /// A regular file, open for reading, with its `fstat`.
    File(File, Metadata),
    /// A FIFO, socket or device: never opened.
    Special,
}

/// A request path that passed the lexical checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target<'a> {
    /// The path to open, without a trailing slash (`.` for the root).
    rel: &'a str,
    /// The path ended with a slash (or was empty): serve the index.
    wants_index: bool,
}

/// The lexical checks every request path goes through before it reaches
/// the filesystem. Returns the reason for a refusal.
fn check_path(path: &str) -> Result<Target<'_>, &'static str> {
    check_relative(path)?;
    if path.is_empty() {
        return Ok(Target {
            rel: ".",
            wants_index: true,
        });
    }
    let (rel, wants_index) = match path.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (path, false),
    };
    check_components(rel)?;
    Ok(Target { rel, wants_index })
}

/// Maps an `open` error to what the server should say.
fn errno_outcome(e: Errno) -> Outcome {
    let forbidden = |reason: &str| Outcome::Forbidden {
        reason: reason.to_string(),
    };
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG => Outcome::NotFound,
        Errno::EXDEV | Errno::ELOOP => forbidden(OUTSIDE_ROOT),
        Errno::EACCES | Errno::EPERM => forbidden("permission denied"),
        // Sockets and device files without a driver refuse to open.
        Errno::ENXIO | Errno::ENODEV => forbidden(NOT_REGULAR),
        e => Outcome::Failed {
            reason: e.desc().to_string(),
        },
    }
}

fn failed(e: &io::Error) -> Resolution {
    Resolution::of(Outcome::Failed {
        reason: e.to_string(),
    })
}

fn io_errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The version of a file, from its `fstat`.
fn file_meta(stat: &Metadata) -> FileMeta {
    FileMeta {
        size: stat.size(),
        mtime_secs: stat.mtime(),
        mtime_nanos: u32::try_from(stat.mtime_nsec()).unwrap_or(0),
        inode: stat.ino(),
        device: stat.dev(),
    }
}

/// Reads from offset 0 until end-of-file or until more than `limit` bytes
/// have arrived (so the caller can tell that the file outgrew the limit).
/// Uses `pread`, so the descriptor's offset stays at 0.
fn read_up_to(file: &File, limit: u64) -> io::Result<Vec<u8>> {
    let cap = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut buf = Vec::new();
    loop {
        let filled = buf.len();
        if filled >= cap {
            return Ok(buf);
        }
        let want = (cap - filled).min(READ_CHUNK);
        buf.resize(filled + want, 0);
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => {
                buf.truncate(filled);
                return Ok(buf);
            }
            Ok(n) => buf.truncate(filled + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(filled),
            Err(e) => return Err(e),
        }
    }
}

/// The storage `file` lives on; [`Storage::Uncertain`] when `fstatfs`
/// fails, so that the server never trusts a residency check it cannot
/// make.
fn storage_of(file: &File) -> Storage {
    match nix::sys::statfs::fstatfs(file.as_fd()) {
        Ok(fs) => Storage::of_filesystem(fs.filesystem_type().0),
        Err(_) => Storage::Uncertain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A temporary document root, removed on drop.
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(name: &str) -> TempRoot {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("amped-helper-{}-{name}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp root");
            TempRoot(dir)
        }

        fn write(&self, rel: &str, bytes: &[u8]) {
            let path = self.0.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create parent");
            }
            std::fs::write(path, bytes).expect("write file");
        }

        fn resolver(&self, inline_max: u64) -> Resolver {
            Resolver::open(&self.0, inline_max).expect("open root")
        }

        /// The same root through both the openat2 path and the walk.
        fn resolvers(&self, inline_max: u64) -> [Resolver; 2] {
            let walk = self.resolver(inline_max);
            walk.force_walk();
            [self.resolver(inline_max), walk]
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn forbidden(reason: &str) -> Outcome {
        Outcome::Forbidden {
            reason: reason.to_string(),
        }
    }

    fn inline_bytes(r: &Resolution) -> &[u8] {
        match &r.outcome {
            Outcome::File {
                body: Body::Inline(bytes),
                ..
            } => bytes,
            other => panic!("expected an inline file, got {other:?}"),
        }
    }

    #[test]
    fn the_kernel_has_openat2() {
        let root = TempRoot::new("probe");
        assert!(root.resolver(10).uses_openat2());
    }

    #[test]
    fn small_file_comes_inline_with_its_metadata() {
        let root = TempRoot::new("inline");
        root.write("hello.txt", b"hello, world\n");
        let stat = std::fs::metadata(root.0.join("hello.txt")).expect("stat");
        for r in root.resolvers(1024) {
            let res = r.resolve("hello.txt", None);
            assert!(res.fd.is_none());
            assert_eq!(inline_bytes(&res), b"hello, world\n");
            let Outcome::File { meta, .. } = res.outcome else {
                panic!("not a file")
            };
            assert_eq!(meta.size, 13);
            assert_eq!(meta.inode, stat.ino());
            assert_eq!(meta.device, stat.dev());
            assert_eq!(meta.mtime_secs, stat.mtime());
            assert_eq!(i64::from(meta.mtime_nanos), stat.mtime_nsec());
        }
    }

    #[test]
    fn empty_file_and_exact_limit_are_inline() {
        let root = TempRoot::new("limits");
        root.write("empty", b"");
        root.write("exact", &[7u8; 100]);
        root.write("over", &[7u8; 101]);
        let r = root.resolver(100);
        assert_eq!(inline_bytes(&r.resolve("empty", None)), b"");
        assert_eq!(inline_bytes(&r.resolve("exact", None)).len(), 100);
        assert!(r.resolve("over", None).fd.is_some());
    }

    #[test]
    fn large_file_comes_as_a_descriptor_with_the_right_bytes() {
        let root = TempRoot::new("large");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        root.write("big/file.bin", &content);
        for r in root.resolvers(65536) {
            let res = r.resolve("big/file.bin", None);
            match &res.outcome {
                Outcome::File {
                    meta,
                    body: Body::Descriptor { .. },
                } => assert_eq!(meta.size, content.len() as u64),
                other => panic!("expected a descriptor, got {other:?}"),
            }
            let mut file = File::from(res.fd.expect("descriptor"));
            let mut read = Vec::new();
            file.read_to_end(&mut read).expect("read");
            assert_eq!(read, content);
        }
    }

    #[test]
    fn directories_with_and_without_slash() {
        let root = TempRoot::new("dirs");
        root.write("docs/index.html", b"<h1>docs</h1>");
        root.write("index.html", b"<h1>home</h1>");
        for r in root.resolvers(1024) {
            assert_eq!(r.resolve("docs", None).outcome, Outcome::Directory);
            assert_eq!(inline_bytes(&r.resolve("docs/", None)), b"<h1>docs</h1>");
            assert_eq!(inline_bytes(&r.resolve("", None)), b"<h1>home</h1>");
            assert_eq!(
                r.resolve("docs/index.html/", None).outcome,
                Outcome::NotFound
            );
            assert_eq!(r.resolve("nope.html", None).outcome, Outcome::NotFound);
            assert_eq!(r.resolve("nope/", None).outcome, Outcome::NotFound);
            assert_eq!(r.resolve("index.html/x", None).outcome, Outcome::NotFound);
        }
    }

    #[test]
    fn directory_without_index_is_listed_when_asked() {
        let root = TempRoot::new("listing");
        root.write("d/a.txt", b"12345");
        root.write("d/.hidden", b"x");
        root.write("d/sub/index.html", b"i");
        std::os::unix::fs::symlink("/etc/passwd", root.0.join("d/link")).expect("symlink");
        for r in root.resolvers(1024) {
            let r = r.with_listing(true);
            let Outcome::Listing {
                mut entries,
                truncated,
            } = r.resolve("d/", None).outcome
            else {
                panic!("a listing");
            };
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let seen: Vec<(&str, bool, u64)> = entries
                .iter()
                .map(|e| (e.name.as_str(), e.is_dir, e.size))
                .collect();
            assert_eq!(seen, [("a.txt", false, 5), ("sub", true, 0)]);
            assert!(!truncated);
            assert!(entries[0].mtime_secs > 0);
            // A directory with an index is served as before.
            assert!(matches!(
                r.resolve("d/sub/", None).outcome,
                Outcome::File { .. }
            ));
        }
    }

    #[test]
    fn directory_without_index_is_forbidden() {
        let root = TempRoot::new("noindex");
        std::fs::create_dir_all(root.0.join("empty")).expect("mkdir");
        std::fs::create_dir_all(root.0.join("odd/index.html")).expect("mkdir");
        for r in root.resolvers(1024) {
            assert_eq!(r.resolve("empty/", None).outcome, forbidden(NO_INDEX));
            assert_eq!(r.resolve("", None).outcome, forbidden(NO_INDEX));
            // An index.html that is itself a directory is not served.
            assert_eq!(r.resolve("odd/", None).outcome, forbidden(NOT_REGULAR));
        }
    }

    #[test]
    fn lexical_checks_refuse_climbing_hidden_and_odd_paths() {
        let root = TempRoot::new("lexical");
        root.write("a/b.txt", b"b");
        root.write(".secret", b"secret");
        root.write("a/.htpasswd", b"secret");
        for r in root.resolvers(1024) {
            for path in ["../etc/passwd", "a/../a/b.txt", "a/..", ".."] {
                assert_eq!(
                    r.resolve(path, None).outcome,
                    forbidden(OUTSIDE_ROOT),
                    "{path}"
                );
            }
            assert_eq!(
                r.resolve("/etc/passwd", None).outcome,
                forbidden(OUTSIDE_ROOT)
            );
            for path in [".secret", "a/.htpasswd", ".git/config", "a/.hidden/"] {
                assert_eq!(
                    r.resolve(path, None).outcome,
                    forbidden("hidden file"),
                    "{path}"
                );
            }
            for path in ["a//b.txt", "//", "a/b.txt//"] {
                assert!(
                    matches!(r.resolve(path, None).outcome, Outcome::Forbidden { .. }),
                    "{path}"
                );
            }
            assert!(matches!(
                r.resolve("./a/b.txt", None).outcome,
                Outcome::Forbidden { .. }
            ));
            assert!(matches!(
                r.resolve("a/b.txt\0", None).outcome,
                Outcome::Forbidden { .. }
            ));
            assert_eq!(inline_bytes(&r.resolve("a/b.txt", None)), b"b");
        }
    }

    #[test]
    fn overlong_paths_are_not_found() {
        let root = TempRoot::new("long");
        let long = "x".repeat(5000);
        let r = root.resolver(1024);
        assert_eq!(r.resolve(&long, None).outcome, Outcome::NotFound);
    }

    #[test]
    fn symlinks_inside_the_root_are_followed() {
        let root = TempRoot::new("inside");
        root.write("real/page.html", b"page");
        symlink("real/page.html", root.0.join("alias.html")).expect("symlink");
        symlink("../real", root.0.join("real/loop")).expect("symlink");
        std::fs::create_dir_all(root.0.join("sub")).expect("mkdir");
        symlink("../real/page.html", root.0.join("sub/up.html")).expect("symlink");
        for r in root.resolvers(1024) {
            assert_eq!(inline_bytes(&r.resolve("alias.html", None)), b"page");
            assert_eq!(inline_bytes(&r.resolve("sub/up.html", None)), b"page");
            assert_eq!(
                inline_bytes(&r.resolve("real/loop/page.html", None)),
                b"page"
            );
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let root = TempRoot::new("escape");
        std::fs::create_dir_all(root.0.join("d")).expect("mkdir");
        symlink("/etc/passwd", root.0.join("abs")).expect("symlink");
        symlink("../../../../../../../../etc/passwd", root.0.join("d/rel")).expect("symlink");
        symlink("/etc", root.0.join("etc")).expect("symlink");
        symlink("/proc/self/root/etc/passwd", root.0.join("magic")).expect("symlink");
        symlink("selfloop", root.0.join("selfloop")).expect("symlink");
        for r in root.resolvers(1 << 20) {
            for path in ["abs", "d/rel", "etc/passwd", "etc/", "magic", "selfloop"] {
                let outcome = r.resolve(path, None).outcome;
                assert!(
                    matches!(outcome, Outcome::Forbidden { .. } | Outcome::NotFound),
                    "{path}: {outcome:?}"
                );
                assert_ne!(
                    outcome,
                    Outcome::NotFound,
                    "{path} should be refused, not missing"
                );
            }
            assert_eq!(r.resolve("abs", None).outcome, forbidden(OUTSIDE_ROOT));
            assert_eq!(r.resolve("d/rel", None).outcome, forbidden(OUTSIDE_ROOT));
        }
    }

    #[test]
    fn permissions_are_honoured_and_searchable_directories_still_work() {
        use std::os::unix::fs::PermissionsExt;
        let root = TempRoot::new("perms");
        root.write("private/index.html", b"private index");
        root.write("locked/index.html", b"locked index");
        root.write("secret.txt", b"secret");
        let mode = |rel: &str, mode: u32| {
            let path = root.0.join(rel);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        mode("", 0o755);
        mode("private", 0o711); // searchable, not listable
        mode("locked", 0o700);
        mode("secret.txt", 0o600);
        let path = root.0.clone();
        let outcomes = std::thread::spawn(move || {
            // As root, become "nobody" for file access in this thread only
            // (the raw syscall is per thread; going from fsuid 0 to another
            // also drops CAP_DAC_OVERRIDE), so permissions apply.
            // SAFETY: geteuid and setfsuid have no memory-safety
            // preconditions.
            unsafe {
                if libc::geteuid() == 0 {
                    libc::syscall(libc::SYS_setfsuid, 65534);
                }
            }
            let mut outcomes = Vec::new();
            for r in [Resolver::open(&path, 1024), Resolver::open(&path, 1024)] {
                let r = r.expect("open root");
                if !outcomes.is_empty() {
                    r.force_walk();
                }
                outcomes.push(
                    ["private", "private/", "locked", "locked/", "secret.txt"]
                        .map(|p| r.resolve(p, None).outcome),
                );
            }
            outcomes
        })
        .join()
        .expect("test thread");
        let denied = forbidden("permission denied");
        for [private, private_index, locked, locked_index, secret] in outcomes {
            assert_eq!(private, Outcome::Directory);
            assert!(
                matches!(&private_index, Outcome::File { body: Body::Inline(b), .. } if b == b"private index"),
                "{private_index:?}"
            );
            // A directory we may not search: it is there, but its index
            // cannot be reached.
            assert_eq!(locked, Outcome::Directory);
            assert_eq!(locked_index, denied);
            assert_eq!(secret, denied);
        }
    }

    #[test]
    fn unchanged_when_the_known_version_matches() {
        let root = TempRoot::new("unchanged");
        root.write("f.txt", b"one");
        let content = vec![1u8; 5000];
        root.write("big.bin", &content);
        let r = root.resolver(1000);
        for path in ["f.txt", "big.bin"] {
            let Outcome::File { meta, .. } = r.resolve(path, None).outcome else {
                panic!("not a file")
            };
            let res = r.resolve(path, Some(meta));
            assert_eq!(res.outcome, Outcome::Unchanged);
            assert!(res.fd.is_none());
            let mut stale = meta;
            stale.mtime_nanos = stale.mtime_nanos.wrapping_add(1);
            assert!(matches!(
                r.resolve(path, Some(stale)).outcome,
                Outcome::File { .. }
            ));
        }
        // Rewritten with another size: no longer unchanged.
        let Outcome::File { meta, .. } = r.resolve("f.txt", None).outcome else {
            panic!("not a file")
        };
        root.write("f.txt", b"three");
        assert_eq!(inline_bytes(&r.resolve("f.txt", Some(meta))), b"three");
    }

    #[test]
    fn a_fifo_is_forbidden_without_blocking() {
        let root = TempRoot::new("fifo");
        nix::unistd::mkfifo(&root.0.join("pipe"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
        std::fs::create_dir_all(root.0.join("d")).expect("mkdir");
        nix::unistd::mkfifo(
            &root.0.join("d/index.html"),
            Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
        let path = root.0.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = Resolver::open(&path, 1024).expect("open root");
            let _ = tx.send((
                r.resolve("pipe", None).outcome,
                r.resolve("d/", None).outcome,
            ));
        });
        let (pipe, index) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("resolving a FIFO blocked");
        assert_eq!(pipe, forbidden(NOT_REGULAR));
        assert_eq!(index, forbidden(NOT_REGULAR));
    }

    #[test]
    fn a_fifo_is_never_opened_for_reading() {
        // A writer opening a FIFO waits for a reader; an open for reading
        // by the helper (even O_NONBLOCK) would let it through.
        let root = TempRoot::new("fifo-open");
        let fifo = root.0.join("pipe");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let (tx, rx) = mpsc::channel();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let opened = std::fs::OpenOptions::new().write(true).open(&writer_path);
            let _ = tx.send(opened.is_ok());
        });
        for r in root.resolvers(1024) {
            assert_eq!(r.resolve("pipe", None).outcome, forbidden(NOT_REGULAR));
        }
        // Nothing to wait for but the writer's open: no reader came.
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "the lookup opened the FIFO for reading"
        );
        // Let the writer go: a reader of our own.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("open the FIFO for reading");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        drop(reader);
        writer.join().expect("writer thread");
    }

    #[test]
    fn a_missing_or_plain_root_is_an_error() {
        let root = TempRoot::new("badroot");
        root.write("file", b"x");
        let missing = Resolver::open(&root.0.join("missing"), 10).expect_err("missing root");
        assert!(missing.to_string().contains("No such file"), "{missing}");
        let plain = Resolver::open(&root.0.join("file"), 10).expect_err("plain file root");
        assert!(plain.to_string().contains("not a directory"), "{plain}");
    }

    #[test]
    fn read_up_to_stops_past_the_limit() {
        let root = TempRoot::new("readupto");
        root.write("f", &[3u8; 200_000]);
        let file = File::open(root.0.join("f")).expect("open");
        assert_eq!(read_up_to(&file, 1000).expect("read").len(), 1001);
        assert_eq!(read_up_to(&file, 500_000).expect("read").len(), 200_000);
    }

    #[test]
    fn check_path_targets() {
        assert_eq!(
            check_path("a/b/"),
            Ok(Target {
                rel: "a/b",
                wants_index: true
            })
        );
        assert_eq!(
            check_path("a/b"),
            Ok(Target {
                rel: "a/b",
                wants_index: false
            })
        );
        assert_eq!(
            check_path(""),
            Ok(Target {
                rel: ".",
                wants_index: true
            })
        );
        assert!(check_path("a..b/c...d").is_ok());
    }
}

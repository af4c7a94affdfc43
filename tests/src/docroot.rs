//! Document roots for the tests.
//!
//! - [`TempDocroot`]: a fresh directory per test (for tests that change
//!   files), removed on drop.
//! - [`www_docroot`]: once per test process, a read-only copy of the
//!   workspace's `www/` plus generated files of 0 B to 100 MiB.
//! - [`site_docroot`]: once per test process, a read-only site with known
//!   files for the HTTP-semantics tests (types, directories, dot-files,
//!   symlinks out of the root, a large file).
//!
//! Shared roots are removed when the test process exits; leftovers of
//! killed runs are swept at the next run.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::binaries::{fork_lock, workspace_root};

const PREFIX: &str = "amped-tests-";

/// Directories to remove when the test process exits.
static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_registered() {
    let dirs = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

fn remove_at_exit(dir: PathBuf) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain function with no captured state.
        unsafe {
            libc::atexit(remove_registered);
        }
    });
    AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
}

/// Removes `amped-tests-<pid>-*` directories of processes that are gone.
fn sweep_stale() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// A new empty directory `amped-tests-<pid>-<n>-<tag>` in the temp dir.
pub(crate) fn unique_dir(tag: &str) -> PathBuf {
    unique_dir_in(&std::env::temp_dir(), tag)
}

/// A new empty directory `amped-tests-<pid>-<n>-<tag>` in `base`.
fn unique_dir_in(base: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    sweep_stale();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{PREFIX}{}-{n}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let _guard = fork_lock();
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Copies a directory tree, keeping symlinks as symlinks and permissions.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let target = fs::read_link(&src).expect("read_link");
            symlink(target, &dst).unwrap_or_else(|e| panic!("symlink {}: {e}", dst.display()));
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            let _guard = fork_lock();
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// A deterministic pseudo-random byte stream (xorshift64*).
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A per-test document root (`<dir>/root`) with room for files outside it
/// (`<dir>/outside`), removed on drop.
pub struct TempDocroot {
    dir: PathBuf,
    root: PathBuf,
}

impl TempDocroot {
    /// An empty document root.
    pub fn new(tag: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), tag)
    }

    /// An empty document root in a new directory beneath `base` (say, one
    /// on a disk rather than the temp dir's tmpfs).
    pub fn new_in(base: &Path, tag: &str) -> Self {
        let dir = unique_dir_in(base, tag);
        let root = dir.join("root");
        fs::create_dir_all(&root).expect("create the docroot");
        fs::create_dir_all(dir.join("outside")).expect("create the outside dir");
        TempDocroot { dir, root }
    }

    /// A document root holding a copy of the workspace's `www/`.
    pub fn with_www(tag: &str) -> Self {
        let docroot = Self::new(tag);
        copy_tree(&workspace_root().join("www"), &docroot.root);
        docroot
    }

    /// The document root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A directory beside (not beneath) the root.
    pub fn outside(&self) -> PathBuf {
        self.dir.join("outside")
    }

    /// Writes `bytes` at `rel` beneath the root.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root.join(rel);
        write_file(&path, bytes);
        path
    }
}

impl Drop for TempDocroot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A file the server should serve byte for byte.
#[derive(Debug, Clone)]
pub struct ServedFile {
    /// The request path (percent-encoded where needed).
    pub url_path: String,
    /// Where it is on disk.
    pub disk_path: PathBuf,
    pub size: u64,
}

impl ServedFile {
    /// The file's bytes as on disk.
    pub fn contents(&self) -> Vec<u8> {
        fs::read(&self.disk_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.disk_path.display()))
    }
}

/// The shared read-only copy of `www/` plus generated files.
pub struct WwwDocroot {
    pub root: PathBuf,
    /// Files copied from `www/` (static ones: no `*.cgi`, nothing under
    /// `cgi-bin/`, no dot-files).
    pub www_files: Vec<ServedFile>,
    /// Generated files under `gen/`: 0 B, 1 B, 64 KiB, 1 MiB, 10 MiB, 100 MiB.
    pub generated: Vec<ServedFile>,
}

impl WwwDocroot {
    /// Every file the byte-exact tests fetch.
    pub fn all_files(&self) -> Vec<ServedFile> {
        self.www_files
            .iter()
            .chain(&self.generated)
            .cloned()
            .collect()
    }
}

/// Sizes of the generated files, with their names.
pub const GENERATED: [(&str, usize); 6] = [
    ("empty.bin", 0),
    ("one.bin", 1),
    ("64k.bin", 64 * 1024),
    ("1m.bin", 1024 * 1024),
    ("10m.bin", 10 * 1024 * 1024),
    ("100m.bin", 100 * 1024 * 1024),
];

fn percent_encode_path(rel: &str) -> String {
    let mut out = String::new();
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn list_static_files(root: &Path, dir: &Path, out: &mut Vec<ServedFile>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if kind.is_dir() {
            if name != "cgi-bin" {
                list_static_files(root, &path, out);
            }
        } else if kind.is_file() && !name.ends_with(".cgi") {
            let rel = path
                .strip_prefix(root)
                .expect("beneath the root")
                .to_string_lossy()
                .into_owned();
            out.push(ServedFile {
                url_path: format!("/{}", percent_encode_path(&rel)),
                size: entry.metadata().expect("metadata").len(),
                disk_path: path,
            });
        }
    }
}

/// The shared `www/` copy with generated files, created once per process.
pub fn www_docroot() -> &'static WwwDocroot {
    static ROOT: OnceLock<WwwDocroot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = unique_dir("www");
        remove_at_exit(dir.clone());
        let root = dir.join("root");
        copy_tree(&workspace_root().join("www"), &root);
        let mut www_files = Vec::new();
        list_static_files(&root, &root, &mut www_files);
        www_files.sort_by(|a, b| a.url_path.cmp(&b.url_path));

        let gen_dir = root.join("gen");
        fs::create_dir_all(&gen_dir).expect("create gen/");
        let generated = GENERATED
            .iter()
            .enumerate()
            .map(|(i, &(name, size))| {
                let path = gen_dir.join(name);
                let file = fs::File::create(&path)
                    .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
                let mut out = BufWriter::new(file);
                // Write in 1 MiB pieces so the 100 MiB file never sits in
                // memory twice.
                let mut written = 0;
                let mut seed = 1 + i as u64 * 1000;
                while written < size {
                    let piece = (size - written).min(1 << 20);
                    out.write_all(&pseudo_random_bytes(piece, seed))
                        .expect("write a generated file");
                    written += piece;
                    seed += 1;
                }
                out.flush().expect("flush a generated file");
                ServedFile {
                    url_path: format!("/gen/{name}"),
                    disk_path: path,
                    size: size as u64,
                }
            })
            .collect();
        WwwDocroot {
            root,
            www_files,
            generated,
        }
    })
}

/// Text planted outside the site's root; it must never be served.
pub const OUTSIDE_SECRET: &str = "amped-outside-secret-7f3a9c do not serve";

/// The shared fixture site for HTTP-semantics tests.
///
/// ```text
/// index.html  style.css  notes.txt  app.js  data.json  image.png  blob.zzz
/// large.bin (200 KiB, above the default inline-max)
/// big.bin (300 KiB), huge.bin (4 MiB): large responses to pipeline behind
/// cached.html  slow.html
/// sub/index.html  sub/page.html
/// noindex/file.txt            (a directory without index.html)
/// .secret  .hidden/file.txt   (dot-files)
/// escape.txt -> ../outside/secret.txt   (symlink out of the root)
/// outdir -> ../outside                  (directory symlink out of the root)
/// ```
pub struct FixtureSite {
    pub root: PathBuf,
}

impl FixtureSite {
    /// The bytes of `rel` (beneath the root) as on disk.
    pub fn file(&self, rel: &str) -> Vec<u8> {
        let path = self.root.join(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

/// Writes the fixture site's files beneath `root`, with the out-of-root
/// target in `outside`.
pub fn populate_site(root: &Path, outside: &Path) {
    let files: [(&str, &[u8]); 14] = [
        (
            "index.html",
            b"<!doctype html>\n<html><head><title>amped test site</title></head>\n<body><p>index of the test site</p></body></html>\n",
        ),
        ("style.css", b"body { color: #333; }\n"),
        ("notes.txt", b"plain notes, utf-8: caf\xc3\xa9\n"),
        ("app.js", b"console.log('amped');\n"),
        ("data.json", b"{\"amped\": true}\n"),
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01",
        ),
        ("blob.zzz", b"unknown extension\n"),
        ("cached.html", b"<p>the cached page</p>\n"),
        ("slow.html", b"<p>the page the helper is slow to find</p>\n"),
        ("sub/index.html", b"<p>sub index</p>\n"),
        ("sub/page.html", b"<p>sub page</p>\n"),
        ("noindex/file.txt", b"a directory without an index\n"),
        (".secret", b"dot-file secret\n"),
        (".hidden/file.txt", b"inside a hidden directory\n"),
    ];
    for (rel, bytes) in files {
        write_file(&root.join(rel), bytes);
    }
    write_file(
        &root.join("large.bin"),
        &pseudo_random_bytes(200 * 1024, 42),
    );
    write_file(&root.join("big.bin"), &pseudo_random_bytes(300 * 1024, 44));
    write_file(
        &root.join("huge.bin"),
        &pseudo_random_bytes(4 * 1024 * 1024, 43),
    );
    write_file(&outside.join("secret.txt"), OUTSIDE_SECRET.as_bytes());
    symlink("../outside/secret.txt", root.join("escape.txt")).expect("symlink escape.txt");
    symlink("../outside", root.join("outdir")).expect("symlink outdir");
}

/// The shared fixture site, created once per process.
pub fn site_docroot() -> &'static FixtureSite {
    static SITE: OnceLock<FixtureSite> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = unique_dir("site");
        remove_at_exit(dir.clone());
        let root = dir.join("root");
        let outside = dir.join("outside");
        fs::create_dir_all(&root).expect("create the site root");
        fs::create_dir_all(&outside).expect("create the outside dir");
        populate_site(&root, &outside);
        FixtureSite { root }
    })
}

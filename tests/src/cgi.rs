//! Fixtures for the CGI tests: a temporary document root that /bin/sh
//! scripts are written into (mode 755), requests with bodies, waiting for
//! a condition with a deadline, and finding a script's processes through
//! `/proc` (by process group, by parent, or by a marker in their
//! environment).
//!
//! Scripts are written by a short-lived child process, never through a
//! descriptor of this test process: a process forked by another test
//! thread (a server being started) would inherit such a descriptor until
//! its exec, and executing the script meanwhile fails with ETXTBSY. This
//! process never holding a script open for writing needs no fork lock.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::docroot::{write_file, TempDocroot};
use crate::procfs::{kill_processes, poll_until, processes_with_environ, ProcStat};
use crate::DEADLINE;

/// A temporary document root for CGI scripts, removed on drop.
pub struct CgiSite {
    docroot: TempDocroot,
}

impl CgiSite {
    /// An empty root; `tag` names the directory.
    pub fn new(tag: &str) -> Self {
        CgiSite {
            docroot: TempDocroot::new(tag),
        }
    }

    /// The document root (not canonicalised; see [`canonical_root`](Self::canonical_root)).
    pub fn root(&self) -> &Path {
        self.docroot.path()
    }

    /// The document root with symlinks resolved, as the server reports it
    /// in DOCUMENT_ROOT.
    pub fn canonical_root(&self) -> PathBuf {
        fs::canonicalize(self.root()).expect("canonicalize the docroot")
    }

    /// A directory beside (not beneath) the root, for files the scripts
    /// write and the test reads.
    pub fn outside(&self) -> PathBuf {
        fs::canonicalize(self.docroot.outside()).expect("canonicalize the outside dir")
    }

    /// Writes a static file at `rel` beneath the root (mode 644).
    pub fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        self.docroot.write(rel, bytes)
    }

    /// Writes `#!/bin/sh\n<body>` at `rel` beneath the root, mode 755.
    pub fn script(&self, rel: &str, body: &str) -> PathBuf {
        self.raw_script(rel, format!("#!/bin/sh\n{body}").as_bytes(), 0o755)
    }

    /// Writes `bytes` verbatim at `rel` beneath the root with `mode`
    /// (through [`write_executable`]).
    pub fn raw_script(&self, rel: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.root().join(rel);
        write_executable(&path, bytes, mode);
        path
    }
}

/// Writes `bytes` at `path` (parents created), then sets `mode`. The write
/// holds the fork lock ([`crate::binaries::fork_lock`]), so no process
/// forked by another test thread can hold a writable descriptor of it when
/// a server later executes it (which would fail with ETXTBSY).
pub fn write_executable(path: &Path, bytes: &[u8], mode: u32) {
    write_file(path, bytes);
    set_mode(path, mode);
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// `printf` format text for a CGI header block `Content-Type: text/plain`
/// plus the blank line, for use inside a shell script.
pub const TEXT_HEAD: &str = r"printf 'Content-Type: text/plain\r\n\r\n'";

/// `METHOD target HTTP/1.1` with `Host: 127.0.0.1`, `headers`,
/// `Content-Length` and the body.
pub fn request_with_body(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `body` in chunked transfer coding, cut into pieces of the given sizes
/// (cycled), ended by the last chunk and an empty trailer.
pub fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    assert!(sizes.iter().all(|&s| s > 0), "chunk sizes must be positive");
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 64);
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Waits (up to [`DEADLINE`]) for `path` to exist.
pub fn wait_for_file(path: &Path) {
    assert!(
        poll_until(DEADLINE, || path.exists()),
        "{} did not appear within {DEADLINE:?}",
        path.display()
    );
}

/// Kills, on drop, every process still carrying a site's `DOCUMENT_ROOT`
/// in its environment, so that a failing test leaves no script (spinning,
/// sleeping or blocked on a pipe) behind.
pub struct Reaper(String);

impl Reaper {
    pub fn new(site: &CgiSite) -> Self {
        Reaper(format!("DOCUMENT_ROOT={}", site.canonical_root().display()))
    }

    /// The marker to look for in `/proc/*/environ`.
    pub fn marker(&self) -> &str {
        &self.0
    }

    /// The site's script processes running now (zombies left out).
    pub fn running(&self) -> Vec<ProcStat> {
        processes_with_environ(&self.0)
            .into_iter()
            .filter(|p| !matches!(p.state, 'Z' | 'X'))
            .collect()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        kill_processes(&processes_with_environ(&self.0));
    }
}

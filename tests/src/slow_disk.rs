//! A slow disk for the tests: `tests/bench/slowdisk/slowfs.py` (a
//! read-only FUSE mirror that sleeps in every read and opens files with
//! `direct_io`, so a read never fills the page cache) mounted over a
//! directory, and a document root whose `slow/` subdirectory is that mount.
//!
//! - [`SlowDisk`]: one mount, held by the PID of its slowfs process; it
//!   waits until the mount is really there, reads slowfs's `--stats` count
//!   of reads and bytes, and on drop stops slowfs by PID (SIGTERM, then
//!   SIGKILL and `fusermount3 -u -z`) so no mount outlives the test, even
//!   one that panics. slowfs also gets SIGTERM if the thread that started
//!   it dies.
//! - [`SlowSite`]: a temporary document root with a cached `small.html`
//!   and cold files of pseudo-random bytes under `slow/`.
//! - [`slow_disk_available`]: whether the machine has what slowfs needs
//!   (`/dev/fuse`, fuse3's `fusermount3`, Debian's `/usr/bin/python3` with
//!   python3-fusepy). A machine without it fails the tests with a message
//!   saying what is missing, unless `AMPED_TESTS_NO_FUSE=1` says skipping
//!   them is intended.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::{collect, fork_lock, run_with_deadline, spawn_locked, Collected};
use crate::docroot::{pseudo_random_bytes, unique_dir, write_file, TempDocroot};
use crate::procfs::{poll_until, send_signal};
use crate::DEADLINE;

/// The Python that has Debian's python3-fusepy.
const PYTHON: &str = "/usr/bin/python3";

/// What to install when something is missing.
const INSTALL: &str = "apt-get install fuse3 python3-fusepy";

/// The most bytes the kernel asks slowfs for in one read (its
/// `--max-read` default, 128 KiB).
pub const FUSE_MAX_READ: u64 = 128 * 1024;

/// `tests/bench/slowdisk/slowfs.py`, the one slow filesystem the
/// benchmark and the tests share.
pub fn slowfs_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/slowdisk/slowfs.py")
}

/// What this machine lacks for slowfs, or `Ok` (checked once).
fn missing() -> &'static Result<(), String> {
    static MISSING: OnceLock<Result<(), String>> = OnceLock::new();
    MISSING.get_or_init(|| {
        let mut lacks = Vec::new();
        if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            lacks.push(format!(
                "/dev/fuse cannot be opened ({e}); a container needs it passed in \
                 (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
            ));
        }
        if !on_path("fusermount3") {
            lacks.push("fusermount3 is not on PATH (package fuse3)".to_owned());
        }
        if !Path::new(PYTHON).is_file() {
            lacks.push(format!("{PYTHON} does not exist (package python3)"));
        } else {
            let check = run_with_deadline(
                Path::new(PYTHON),
                &[
                    "-c",
                    "try:\n import fusepy\nexcept ImportError:\n import fuse\n",
                ],
                DEADLINE,
            );
            if !check.status.success() {
                lacks.push(format!(
                    "{PYTHON} cannot import fusepy (package python3-fusepy): {}",
                    check.stderr.trim()
                ));
            }
        }
        if lacks.is_empty() {
            Ok(())
        } else {
            Err(lacks.join("; "))
        }
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// True when slowfs can run here. Otherwise panics saying what is missing
/// and how to install it, unless `AMPED_TESTS_NO_FUSE=1` asks to skip
/// (then prints why and returns false).
pub fn slow_disk_available() -> bool {
    let Err(lacks) = missing() else {
        return true;
    };
    if std::env::var("AMPED_TESTS_NO_FUSE").as_deref() == Ok("1") {
        eprintln!("skipped: the slow-disk tests need FUSE: {lacks} (AMPED_TESTS_NO_FUSE=1)");
        return false;
    }
    panic!(
        "the slow-disk tests need FUSE: {lacks}. Install it with `{INSTALL}` (as .ci/run \
         does), or set AMPED_TESTS_NO_FUSE=1 to skip them knowingly"
    );
}

/// slowfs's counters, from its `--stats` file (rewritten every 0.2 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowStats {
    /// FUSE read requests served (each slept the delay).
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes: u64,
    /// The most reads that were in progress at once.
    pub max_in_flight: u64,
}

impl SlowStats {
    /// Parses `reads N bytes B max_in_flight M`.
    fn parse(line: &str) -> Option<SlowStats> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |name: &str| {
            let at = words.iter().position(|w| *w == name)?;
            words.get(at + 1)?.parse::<u64>().ok()
        };
        Some(SlowStats {
            reads: field("reads")?,
            bytes: field("bytes")?,
            max_in_flight: field("max_in_flight")?,
        })
    }
}

/// A slowfs mount, stopped (and unmounted) when dropped.
pub struct SlowDisk {
    child: Child,
    mountpoint: PathBuf,
    stats_dir: PathBuf,
    stats_file: PathBuf,
    stderr: Collected,
    delay: Duration,
}

impl SlowDisk {
    /// Mounts `source` at `mountpoint` (an existing empty directory) with
    /// slowfs sleeping `delay_ms` in every read, and waits (up to
    /// [`DEADLINE`]) until the mount answers. `--allow-other` is given when
    /// running as root, so that a server running as another user can read
    /// it too. Panics if FUSE is missing (see [`slow_disk_available`]) or
    /// the mount never comes up.
    pub fn mount(source: &Path, mountpoint: &Path, delay_ms: u32) -> SlowDisk {
        Self::mount_with(source, mountpoint, delay_ms, &[])
    }

    /// [`mount`](Self::mount) with more of slowfs's options (`--gate`).
    pub fn mount_with(
        source: &Path,
        mountpoint: &Path,
        delay_ms: u32,
        options: &[&std::ffi::OsStr],
    ) -> SlowDisk {
        if let Err(lacks) = missing() {
            panic!("cannot mount slowfs: {lacks}; install it with `{INSTALL}`");
        }
        let mountpoint = fs::canonicalize(mountpoint)
            .unwrap_or_else(|e| panic!("the mountpoint {}: {e}", mountpoint.display()));
        let stats_dir = unique_dir("slowfs-stats");
        let stats_file = stats_dir.join("stats");
        let mut command = Command::new(PYTHON);
        command
            .arg(slowfs_script())
            .arg(source)
            .arg(&mountpoint)
            .args(["--delay-ms", &delay_ms.to_string(), "--stats"])
            .arg(&stats_file)
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            command.arg("--allow-other");
        }
        // SAFETY: prctl is async-signal-safe; the closure touches nothing
        // else between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // If this test thread dies without dropping the disk, slowfs
                // still unmounts (SIGTERM is its clean exit).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = spawn_locked(&mut command);
        let (stderr, _) = collect(child.stderr.take());
        let mut disk = SlowDisk {
            child,
            mountpoint,
            stats_dir,
            stats_file,
            stderr,
            delay: Duration::from_millis(u64::from(delay_ms)),
        };

        let mut exited = None;
        let up = poll_until(DEADLINE, || {
            if let Ok(Some(status)) = disk.child.try_wait() {
                exited = Some(status);
                return true;
            }
            is_fuse_mount(&disk.mountpoint) && fs::metadata(&disk.mountpoint).is_ok()
        });
        if let Some(status) = exited {
            panic!(
                "slowfs exited ({status}) before mounting {}:\n{}",
                disk.mountpoint.display(),
                disk.stderr.text()
            );
        }
        assert!(
            up,
            "slowfs did not mount {} within {DEADLINE:?}:\n{}",
            disk.mountpoint.display(),
            disk.stderr.text()
        );
        disk
    }

    /// Where it is mounted (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The delay slept in every read.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// slowfs's process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// slowfs's counters as last written (at most about 0.2 s old; zero
    /// before the first write).
    pub fn stats(&self) -> SlowStats {
        fs::read_to_string(&self.stats_file)
            .ok()
            .and_then(|text| SlowStats::parse(&text))
            .unwrap_or_default()
    }

    /// Waits (up to [`DEADLINE`]) until the counters satisfy `condition`
    /// and returns them; panics with the last ones if they never do.
    pub fn wait_for_stats(
        &self,
        what: &str,
        mut condition: impl FnMut(&SlowStats) -> bool,
    ) -> SlowStats {
        let mut stats = self.stats();
        assert!(
            poll_until(DEADLINE, || {
                stats = self.stats();
                condition(&stats)
            }),
            "slowfs's counters never showed {what}: {stats:?}"
        );
        stats
    }

    /// Waits until two readings of the counters 0.5 s apart agree (slowfs
    /// is idle) and returns them; panics if it is still reading after
    /// [`DEADLINE`].
    pub fn wait_until_idle(&self) -> SlowStats {
        let mut last = self.stats();
        let mut since = Instant::now();
        let idle = poll_until(DEADLINE, || {
            let now = self.stats();
            if now != last {
                last = now;
                since = Instant::now();
            }
            since.elapsed() >= Duration::from_millis(500)
        });
        assert!(idle, "slowfs kept reading for {DEADLINE:?}: {last:?}");
        last
    }

    /// Stops slowfs and makes sure the mount is gone.
    fn stop(&mut self) {
        send_signal(self.pid(), libc::SIGTERM);
        let start = Instant::now();
        let mut ended = false;
        while start.elapsed() < Duration::from_secs(10) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                ended = true;
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        if !ended {
            eprintln!(
                "slowfs (pid {}) ignored SIGTERM for 10 s; killing it",
                self.pid()
            );
            send_signal(self.pid(), libc::SIGKILL);
            let _ = self.child.wait();
        }
        if is_fuse_mount(&self.mountpoint) {
            let _guard = fork_lock();
            let unmounted = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.mountpoint)
                .stdin(Stdio::null())
                .status();
            if !matches!(unmounted, Ok(s) if s.success()) {
                eprintln!(
                    "fusermount3 -u -z {} failed: {unmounted:?}",
                    self.mountpoint.display()
                );
            }
        }
        let _ = fs::remove_dir_all(&self.stats_dir);
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- slowfs ({}) stderr ---\n{}--- end of slowfs stderr ---",
                self.mountpoint.display(),
                self.stderr.text()
            );
        }
    }
}

/// Undoes the octal escapes (`\040` for a space) of `/proc/*/mountinfo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True if `/proc/self/mountinfo` lists a FUSE filesystem (`fuse`,
/// `fuse.slowfs`, ...) mounted at `mountpoint` (a canonical path).
pub fn is_fuse_mount(mountpoint: &Path) -> bool {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    table.lines().any(|line| {
        // `id parent major:minor root MOUNTPOINT options [optional...] - FSTYPE source ...`
        let Some((left, right)) = line.split_once(" - ") else {
            return false;
        };
        let at = left.split(' ').nth(4).map(unescape_mountinfo);
        let fstype = right.split(' ').next().unwrap_or_default();
        at.as_deref() == mountpoint.to_str() && fstype.starts_with("fuse")
    })
}

/// The cached page every [`SlowSite`] serves, `/small.html`.
pub const SMALL_HTML: &[u8] = b"<p>small and always cached</p>\n";

/// One file on the slow disk.
#[derive(Debug, Clone)]
pub struct SlowFile {
    /// The request path, `/slow/NAME`.
    pub url_path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A document root with `small.html` on an ordinary disk and a `slow/`
/// subdirectory that is a slowfs mount of cold files; the mount is
/// stopped before the directories are removed.
pub struct SlowSite {
    // Fields drop in order: the mount goes before the directory under it.
    disk: SlowDisk,
    docroot: TempDocroot,
    files: Vec<SlowFile>,
}

impl SlowSite {
    /// `slow/file0.bin` ... with the given sizes, pseudo-random bytes (seeded
    /// by `tag` and index), behind a slowfs of `delay_ms` per read; `None`
    /// (after saying so) when FUSE is missing and
    /// `AMPED_TESTS_NO_FUSE=1` asks to skip.
    pub fn new(tag: &str, sizes: &[usize], delay_ms: u32) -> Option<SlowSite> {
        if !slow_disk_available() {
            return None;
        }
        let docroot = TempDocroot::new(&format!("slow-{tag}"));
        docroot.write("small.html", SMALL_HTML);
        let source = docroot.outside().join("slow-source");
        fs::create_dir_all(&source).expect("the slow source directory");
        let seed = tag
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        let files: Vec<SlowFile> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let name = format!("file{i}.bin");
                let bytes = pseudo_random_bytes(size, seed.wrapping_add(i as u64));
                write_file(&source.join(&name), &bytes);
                SlowFile {
                    url_path: format!("/slow/{name}"),
                    bytes,
                }
            })
            .collect();
        let mountpoint = docroot.path().join("slow");
        fs::create_dir_all(&mountpoint).expect("the slow mountpoint");
        let disk = SlowDisk::mount(&source, &mountpoint, delay_ms);
        Some(SlowSite {
            disk,
            docroot,
            files,
        })
    }

    /// The document root.
    pub fn root(&self) -> &Path {
        self.docroot.path()
    }

    /// The slow disk mounted at `slow/`.
    pub fn disk(&self) -> &SlowDisk {
        &self.disk
    }

    /// The files under `slow/`, in the order of the sizes given.
    pub fn files(&self) -> &[SlowFile] {
        &self.files
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn stats_lines_parse() {
        assert_eq!(
            SlowStats::parse("reads 8 bytes 1048576 max_in_flight 2\n"),
            Some(SlowStats {
                reads: 8,
                bytes: 1_048_576,
                max_in_flight: 2
            })
        );
        assert_eq!(SlowStats::parse("reads 8 bytes"), None);
        assert_eq!(SlowStats::parse(""), None);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/tmp/plain"), "/tmp/plain");
        assert_eq!(unescape_mountinfo(r"/tmp/x\0"), r"/tmp/x\0");
    }
}

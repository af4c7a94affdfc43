//! A gate for the helper's `AMPED_TEST_HELPER_GATE=SUBSTRING:FILE` hook: a
//! lookup whose path contains SUBSTRING is held in its helper until the
//! test opens the gate (creates FILE). A test that must know a lookup is
//! still in flight while it checks something uses this instead of a fixed
//! delay, which a slow machine can outlast.
//!
//! A gate left closed releases its lookup after 120 s (the helper's own
//! limit); a server holding gated lookups needs a `--helper-timeout` longer
//! than the hold, or it restarts the silent helper and re-sends the lookup
//! (to be held again).

use std::fs;
use std::path::{Path, PathBuf};

use crate::docroot::unique_dir;
use crate::server_process::ServerProcess;
use crate::status::STATUS_PATH;

/// A closed gate; removed (and so closed again) on drop.
pub struct HelperGate {
    dir: PathBuf,
    file: PathBuf,
}

impl HelperGate {
    /// A closed gate in a fresh directory of its own.
    pub fn new(tag: &str) -> Self {
        let dir = unique_dir(&format!("gate-{tag}"));
        let file = dir.join("open");
        HelperGate { dir, file }
    }

    /// The environment variable that makes helpers hold lookups of paths
    /// containing `substring` until the gate opens.
    pub fn env(&self, substring: &str) -> (&'static str, String) {
        let file = self.file.to_str().expect("temp paths are UTF-8");
        ("AMPED_TEST_HELPER_GATE", format!("{substring}:{file}"))
    }

    /// Starts a server on `root` whose helpers hold every lookup of a path
    /// containing `held` at this gate, with two helpers, the status page at
    /// [`STATUS_PATH`] and a `--helper-timeout` (300 s) that no held
    /// lookup reaches, however slow the machine.
    pub fn serve(&self, root: &Path, backend: &str, held: &str) -> ServerProcess {
        self.serve_with_env(root, backend, held, &[])
    }

    /// [`serve`](Self::serve) with more environment variables for the
    /// server and its children (other test hooks).
    pub fn serve_with_env(
        &self,
        root: &Path,
        backend: &str,
        held: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let (var, value) = self.env(held);
        let mut all = vec![(var, value.as_str())];
        all.extend_from_slice(env);
        ServerProcess::serve_with_env(
            root,
            backend,
            &[
                "--helpers",
                "2",
                "--helper-timeout",
                "300",
                "--status-path",
                STATUS_PATH,
            ],
            &all,
        )
    }

    /// Opens the gate: held lookups are answered, later ones pass.
    pub fn open(&self) {
        fs::write(&self.file, b"")
            .unwrap_or_else(|e| panic!("open the gate {}: {e}", self.file.display()));
    }
}

impl Drop for HelperGate {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

//! Where a request body waits for its script: the whole body is read
//! before the script starts, so that a slow upload holds a connection but
//! no script slot (and a chunked body's CONTENT_LENGTH is known). The first
//! [`MEMORY_PART`] bytes stay in memory; the rest go to a temporary file
//! in `--cgi-spool-dir`, opened `O_TMPFILE` (or created and unlinked at
//! once), so nothing is left behind when the server dies. Once the script
//! runs the body is read back from the start, a piece at a time, as its
//! stdin takes it.
//!
//! Every spool charges its bytes to one [`SpoolBudget`] shared by all
//! requests (`--cgi-spool-max`); a body that would pass it is refused.
//! Dropping a spool (the exchange ended, however) gives its bytes back.
//!
//! The file is written and read in the event loop, as nginx does with
//! `client_body_temp_path`: on a local filesystem these are copies into
//! and out of the page cache, which do not wait on the disk unless memory
//! is short (docs/cgi.md, "Uploads to scripts").

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::unlinked_file::open_unlinked;

/// Bytes of a body kept in memory before a file is used: nginx's
/// `client_body_buffer_size` default, enough for any form post.
pub(crate) const MEMORY_PART: usize = 16 * 1024;

/// Bytes of all spooled bodies together, and their bound.
#[derive(Debug, Clone)]
pub(crate) struct SpoolBudget {
    used: Rc<Cell<u64>>,
    max: u64,
}

impl SpoolBudget {
    pub(crate) fn new(max: u64) -> SpoolBudget {
        SpoolBudget {
            used: Rc::new(Cell::new(0)),
            max,
        }
    }

    /// Bytes held by every spool now.
    pub(crate) fn used(&self) -> u64 {
        self.used.get()
    }

    /// Takes `n` bytes of the budget; false (nothing taken) if it would
    /// pass the bound.
    fn charge(&self, n: u64) -> bool {
        let total = self.used.get().saturating_add(n);
        if total > self.max {
            return false;
        }
        self.used.set(total);
        true
    }

    fn release(&self, n: u64) {
        self.used.set(self.used.get().saturating_sub(n));
    }
}

/// Why a body could not be spooled.
#[derive(Debug)]
pub(crate) enum SpoolError {
    /// The bodies spooled together would pass `--cgi-spool-max`.
    Full,
    /// The spool file could not be created or written.
    Io(io::Error),
}

/// One request body, in memory and (past [`MEMORY_PART`]) in a file.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    budget: SpoolBudget,
    memory: Vec<u8>,
    file: Option<File>,
    /// Bytes held in all (memory first, then the file).
    len: u64,
    /// Bytes already handed to the script.
    read: u64,
}

impl Spool {
    /// An empty spool whose file, if needed, goes in `dir`.
    pub(crate) fn new(dir: &Path, budget: SpoolBudget) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
            budget,
            memory: Vec::new(),
            file: None,
            len: 0,
            read: 0,
        }
    }

    /// True once everything held has been handed out.
    pub(crate) fn is_drained(&self) -> bool {
        self.read == self.len
    }

    /// Adds body bytes at the end.
    pub(crate) fn append(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.budget.charge(data.len() as u64) {
            return Err(SpoolError::Full);
        }
        // What does not reach the file is given back below, so that the
        // drop gives back exactly what `len` counts.
        let in_memory = MEMORY_PART
            .saturating_sub(self.memory.len())
            .min(data.len());
        let in_memory = if self.file.is_some() { 0 } else { in_memory };
        self.memory.extend_from_slice(&data[..in_memory]);
        self.len += in_memory as u64;
        let rest = &data[in_memory..];
        if rest.is_empty() {
            return Ok(());
        }
        let written = self.write_file(rest);
        if written.is_err() {
            self.budget.release(rest.len() as u64);
        } else {
            self.len += rest.len() as u64;
        }
        written.map_err(SpoolError::Io)
    }

    fn write_file(&mut self, data: &[u8]) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(open_unlinked(&self.dir)?),
        };
        file.write_all(data)
    }

    /// Hands out up to `max` more bytes of the body, in order, appended
    /// to `out`. Returns how many.
    pub(crate) fn read_into(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let left = self.len - self.read;
        let want = left.min(max as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let memory = self.memory.len() as u64;
        let n = if self.read < memory {
            let start = self.read as usize;
            let end = (start + want).min(self.memory.len());
            out.extend_from_slice(&self.memory[start..end]);
            end - start
        } else {
            let Some(file) = &self.file else {
                return Err(io::Error::other("spool file missing"));
            };
            let start = out.len();
            out.resize(start + want, 0);
            let got = file.read_at(&mut out[start..], self.read - memory);
            let got = match got {
                Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                other => other,
            };
            out.truncate(start + got.as_ref().map_or(0, |n| *n));
            got?
        };
        self.read += n as u64;
        Ok(n)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.budget.release(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(spool: &mut Spool, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while spool.read_into(&mut out, piece).expect("read back") > 0 {}
        out
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        let budget = SpoolBudget::new(1 << 20);
        let mut spool = Spool::new(&std::env::temp_dir(), budget.clone());
        spool.append(b"hello ").expect("append");
        spool.append(b"world").expect("append");
        assert!(spool.file.is_none());
        assert_eq!(budget.used(), 11);
        assert_eq!(drain(&mut spool, 4), b"hello world");
        assert!(spool.is_drained());
        drop(spool);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn large_bodies_go_to_an_unlinked_file_and_come_back_whole() {
        let budget = SpoolBudget::new(1 << 30);
        let mut spool = Spool::new(&std::env::temp_dir(), budget.clone());
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in body.chunks(4093) {
            spool.append(piece).expect("append");
        }
        assert_eq!(spool.len, body.len() as u64);
        assert_eq!(spool.memory.len(), MEMORY_PART);
        let file = spool.file.as_ref().expect("a spool file");
        let meta = file.metadata().expect("fstat");
        assert_eq!(meta.len(), (body.len() - MEMORY_PART) as u64);
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 0, "no name");
        assert_eq!(drain(&mut spool, 65_536), body);
        drop(spool);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_shared_bound_refuses_what_would_pass_it() {
        let budget = SpoolBudget::new(100_000);
        let mut a = Spool::new(&std::env::temp_dir(), budget.clone());
        let mut b = Spool::new(&std::env::temp_dir(), budget.clone());
        a.append(&[1; 60_000]).expect("first fits");
        assert!(matches!(b.append(&[2; 50_000]), Err(SpoolError::Full)));
        b.append(&[2; 40_000]).expect("what is left fits");
        assert_eq!(budget.used(), 100_000);
        drop(a);
        assert_eq!(budget.used(), 40_000);
        b.append(&[3; 50_000]).expect("room again");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let budget = SpoolBudget::new(1 << 30);
        let mut spool = Spool::new(Path::new("/nonexistent/amped-spool"), budget.clone());
        spool.append(&[0; MEMORY_PART]).expect("memory part");
        assert!(matches!(spool.append(&[0; 10]), Err(SpoolError::Io(_))));
        assert_eq!(budget.used(), MEMORY_PART as u64);
    }
}

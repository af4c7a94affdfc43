//! A large file the cache holds open, and what can be known of which of
//! its pages are in memory ([`OpenFile::resident_prefix`]).
//!
//! How residency is told depends on the storage the helper reported
//! (measured in `tests/bench/slowdisk/residency.md`):
//!
//! - tmpfs and ramfs: always in memory;
//! - ext4, xfs, btrfs: `mincore` on a shared, read-only mapping of the
//!   file (made once, on the first check; never read through, so a file
//!   truncated under it cannot fault the server);
//! - anything else (FUSE, NFS, ...), or when the mapping or `mincore`
//!   fails: not known, so never resident; a helper reads every window.
//!   For such a file the server holds no descriptor at all (closing one
//!   can wait on the filesystem: FUSE's flush, NFS's commit); the helpers
//!   open it by path, checked against the version looked up.

use std::cell::OnceCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

use protocol::{FileMeta, Storage};

/// The most pages one residency check looks at: a straight window
/// (`super::STRAIGHT_WINDOW`, 1 MiB) in 4 KiB pages, and one more for a
/// window that starts mid-page. A longer check counts no further, which
/// only makes it more careful.
const MAX_CHECKED_PAGES: usize = 257;

/// A shared, read-only mapping of a whole file, used only for `mincore`.
#[derive(Debug)]
struct Mapping {
    addr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    fn of(fd: &OwnedFd, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a new read-only shared mapping of a descriptor we own;
        // the kernel picks the address. It is never dereferenced, only
        // passed to mincore, and unmapped in Drop.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return None;
        }
        NonNull::new(addr).map(|addr| Mapping { addr, len })
    }

    /// Counts the pages resident from page `first` on, stopping at the
    /// first one that is not, looking at no more than `pages` pages (nor
    /// more than [`MAX_CHECKED_PAGES`]). `None` when mincore fails.
    fn resident_pages(&self, first: usize, pages: usize, page: usize) -> Option<usize> {
        let total = self.len.div_ceil(page);
        let pages = pages
            .min(total.saturating_sub(first))
            .min(MAX_CHECKED_PAGES);
        if pages == 0 {
            return Some(0);
        }
        let mut vec = [0u8; MAX_CHECKED_PAGES];
        // SAFETY: the range lies inside our mapping (first + pages <=
        // total pages of it) and starts on a page boundary; `vec` has at
        // least one byte per page of the range.
        let rc = unsafe {
            libc::mincore(
                self.addr.as_ptr().cast::<u8>().add(first * page).cast(),
                pages * page,
                vec.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return None;
        }
        Some(vec.iter().take_while(|&&b| b & 1 == 1).count())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `of`, once.
        unsafe { libc::munmap(self.addr.as_ptr(), self.len) };
    }
}

/// A large file being served from the cache.
#[derive(Debug)]
pub(crate) struct OpenFile {
    /// `None` for a file the helpers read by path.
    fd: Option<OwnedFd>,
    storage: Storage,
    /// The path it was looked up as.
    path: String,
    /// The version looked up (its size is what the mapping covers).
    meta: FileMeta,
    /// Made on the first residency check; `None` if it cannot be made.
    mapping: OnceCell<Option<Mapping>>,
}

impl OpenFile {
    /// A file open in the server, on `storage`.
    pub(crate) fn open(fd: OwnedFd, storage: Storage, path: String, meta: FileMeta) -> OpenFile {
        OpenFile {
            fd: Some(fd),
            storage,
            path,
            meta,
            mapping: OnceCell::new(),
        }
    }

    /// A file the helpers read by path (storage that cannot tell
    /// residency).
    pub(crate) fn by_path(path: String, meta: FileMeta) -> OpenFile {
        OpenFile {
            fd: None,
            storage: Storage::Uncertain,
            path,
            meta,
            mapping: OnceCell::new(),
        }
    }

    /// The descriptor, unless the helpers read the file by path.
    pub(crate) fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    pub(crate) fn meta(&self) -> FileMeta {
        self.meta
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// How many of the `len` bytes from `offset` on are known to be in
    /// memory now, counted from `offset` up to the first page that is not
    /// (0 when that is the first one, or when it cannot be told).
    pub(crate) fn resident_prefix(&self, offset: u64, len: u64) -> u64 {
        match self.storage {
            Storage::Memory => len,
            Storage::Uncertain => 0,
            Storage::PageCache => self.mincore_prefix(offset, len),
        }
    }

    fn mincore_prefix(&self, offset: u64, len: u64) -> u64 {
        let page = page_size();
        let end = offset.saturating_add(len).min(self.meta.size);
        if end <= offset {
            return 0;
        }
        let Some(fd) = &self.fd else {
            return 0;
        };
        let Some(mapping) = self.mapping.get_or_init(|| Mapping::of(fd, self.meta.size)) else {
            return 0;
        };
        let first = (offset / page) as usize;
        let last = end.div_ceil(page) as usize;
        match mapping.resident_pages(first, last - first, page as usize) {
            // Whole pages from the one holding `offset`.
            Some(pages) => ((first + pages) as u64 * page).min(end) - offset,
            None => 0,
        }
        .min(len)
    }
}

/// The size of a page of memory (asked once).
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize, storage: Storage) -> OpenFile {
        let path =
            std::env::temp_dir().join(format!("amped-open-file-{}-{len}", std::process::id()));
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(&vec![7u8; len]).expect("write");
        let fd: OwnedFd = std::fs::File::open(&path).expect("open").into();
        let _ = std::fs::remove_file(&path);
        let meta = FileMeta {
            size: len as u64,
            mtime_secs: 0,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        OpenFile::open(fd, storage, "f".into(), meta)
    }

    #[test]
    fn memory_is_always_resident_and_uncertain_never() {
        let f = file_of(100_000, Storage::Memory);
        assert_eq!(f.resident_prefix(10, 5000), 5000);
        let f = file_of(100_000, Storage::Uncertain);
        assert_eq!(f.resident_prefix(0, 5000), 0);
    }

    #[test]
    fn pages_just_written_are_resident_then_evicted_are_not() {
        // Written through the page cache, so resident (if the temporary
        // directory is on a page-cache filesystem; tmpfs pages are too).
        let f = file_of(1 << 20, Storage::PageCache);
        assert_eq!(f.resident_prefix(5000, 300_000), 300_000);
        assert_eq!(
            f.resident_prefix((1 << 20) - 10, 300_000),
            10,
            "cut at the end"
        );
        assert_eq!(f.resident_prefix(2 << 20, 10), 0, "past the end");
    }

    #[test]
    fn an_empty_file_has_nothing_resident() {
        let f = file_of(0, Storage::PageCache);
        assert_eq!(f.resident_prefix(0, 4096), 0);
    }
}

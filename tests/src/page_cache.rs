//! A file's pages in the kernel's page cache, for tests that need a file
//! to be cold on an ordinary disk: dropping its pages
//! (`fsync`, then `posix_fadvise(POSIX_FADV_DONTNEED)`), counting how many
//! are resident (`mmap` + `mincore`), and picking a temp directory on a
//! filesystem that can drop them at all (not tmpfs, where the pages are
//! the file).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::binaries::workspace_root;

/// `statfs` magic numbers of filesystems that live in memory.
const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;

/// The filesystem type (`statfs`'s `f_type`) of `path`.
pub fn filesystem_type(path: &Path) -> io::Result<libc::c_long> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs(2) fills the zeroed struct we own; the path is a
    // NUL-terminated string that outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by architecture
    Ok(st.f_type as libc::c_long)
}

/// True for tmpfs and ramfs, whose pages cannot be dropped.
pub fn in_memory_filesystem(path: &Path) -> bool {
    matches!(filesystem_type(path), Ok(TMPFS_MAGIC | RAMFS_MAGIC))
}

/// A directory for files whose pages a test drops: the temp dir, unless it
/// is in memory (tmpfs), then the workspace's `target/`.
pub fn disk_backed_temp_dir() -> PathBuf {
    let temp = std::env::temp_dir();
    if in_memory_filesystem(&temp) {
        workspace_root().join("target")
    } else {
        temp
    }
}

/// Writes `path`'s dirty pages to the disk and asks the kernel to drop all
/// of its pages from the page cache.
pub fn evict(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    // SAFETY: posix_fadvise on a descriptor we own; offset 0 and length 0
    // mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// How many of `path`'s pages are in the page cache, and how many it has.
pub fn resident_pages(path: &Path) -> io::Result<(usize, usize)> {
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096);
    let pages = len.div_ceil(page);
    if pages == 0 {
        return Ok((0, 0));
    }
    // SAFETY: a read-only shared mapping of a file we hold open; mapping
    // does not read the file (mincore below does not fault pages in).
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` is a mapping of `len` bytes; `vec` has one byte per
    // page of it.
    let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    let error = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(error);
    }
    Ok((vec.iter().filter(|&&b| b & 1 != 0).count(), pages))
}

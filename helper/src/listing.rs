//! Listing a directory that has no index, for `--dir-listing`: the
//! visible entries (no dot-files), each a regular file or a directory as
//! `fstatat` without following links sees it (symbolic links and special
//! files are left out, so a listing never describes what lies outside
//! the root), with size and modification time. At most
//! [`protocol::MAX_LISTED`] entries; names that are not UTF-8 are left
//! out too (no request could name them).

use std::os::fd::OwnedFd;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, SFlag};
use protocol::{DirEntry, Outcome, MAX_LISTED};

/// Lists the open directory `dir`.
pub fn list(dir: OwnedFd) -> Result<Outcome, Errno> {
    let stat_fd = dir.try_clone().map_err(|_| Errno::EMFILE)?;
    let mut names = Vec::new();
    let mut truncated = false;
    for entry in Dir::from_fd(dir)?.iter() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if names.len() == MAX_LISTED {
            truncated = true;
            break;
        }
        names.push(name.to_string());
    }
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        // Gone since it was read, or not to be looked at: left out.
        let Ok(stat) = fstatat(&stat_fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        let is_dir = match kind {
            SFlag::S_IFDIR => true,
            SFlag::S_IFREG => false,
            _ => continue,
        };
        entries.push(DirEntry {
            name,
            is_dir,
            size: if is_dir {
                0
            } else {
                stat.st_size.max(0) as u64
            },
            mtime_secs: stat.st_mtime,
        });
    }
    Ok(Outcome::Listing { entries, truncated })
}

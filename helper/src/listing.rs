//! Listing a directory that has no index, for `--dir-listing`: the
//! visible entries (no dot-files), each a regular file or a directory,
//! with size and modification time. A symbolic link is listed as what it
//! leads to exactly when a request for it is served: opened beneath the
//! root as a request would be (so a link out of the root or to a
//! dot-file is left out); special files are left out. At most
//! [`protocol::MAX_LISTED`] entries; names that are not UTF-8 are left
//! out too (no request could name them).

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::fstat;
use protocol::beneath::Root;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, SFlag};
use protocol::{DirEntry, Outcome, MAX_LISTED};

/// Lists the open directory `dir`, which is `rel` beneath `root` (`.` for
/// the root itself).
pub fn list(root: &Root, rel: &str, dir: OwnedFd) -> Result<Outcome, Errno> {
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
        let Ok(mut stat) = fstatat(&stat_fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() {
            // What a request for the link would reach, if it is served.
            let path = match rel {
                "." | "" => name.clone(),
                dir => format!("{dir}/{name}"),
            };
            let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
            let Ok(target) = root.open_beneath(&path, flags).and_then(|fd| fstat(&fd)) else {
                continue;
            };
            stat = target;
        }
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

//! A memory buffer shared between the server and its helpers: a memfd
//! the server creates and passes to each helper, mapped by both. A helper
//! reads a window of a file straight into a slot of it, and the server
//! writes the slot to the client, so the bytes are not copied through the
//! helper's socket (two copies fewer for every window).
//!
//! Who may touch which bytes is the protocol's business, not this type's:
//! the server lends a slot to one read at a time, and reads it only after
//! the helper has answered.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// A shared, read-write mapping of a memfd.
#[derive(Debug)]
pub struct SharedBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedBuffer {
    /// Creates a buffer of `len` bytes (a memfd, close-on-exec) and maps
    /// it; the descriptor is for passing to a helper.
    pub fn create(name: &CStr, len: usize) -> io::Result<(SharedBuffer, OwnedFd)> {
        // SAFETY: memfd_create with a valid C string; the result is checked.
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len).map_err(|_| io::Error::other("buffer too large"))?;
        // SAFETY: ftruncate on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Sealed at that size: no helper can shrink it under the server's
        // mapping (a SIGBUS there would kill the server) or grow it.
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on a descriptor we own; the result is checked.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let buffer = SharedBuffer::map(&fd, len)?;
        Ok((buffer, fd))
    }

    /// Maps `len` bytes of a buffer's descriptor (a helper's side). The
    /// descriptor may be closed afterwards.
    pub fn map(fd: &OwnedFd, len: usize) -> io::Result<SharedBuffer> {
        if len == 0 {
            return Err(io::Error::other("an empty shared buffer"));
        }
        // SAFETY: a new shared mapping of a descriptor we were given; the
        // kernel picks the address; it is unmapped in Drop.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(SharedBuffer { ptr, len })
    }

    /// Never 0: an empty buffer is refused when it is mapped.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when `offset..offset + len` lies inside the buffer.
    pub fn holds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Where `offset..offset + len` starts (`None` outside the buffer):
    /// a raw pointer to hand the kernel (a `write`), for bytes another
    /// process may write, over which no Rust reference may be held.
    pub fn span(&self, offset: usize, len: usize) -> Option<*const u8> {
        // SAFETY: in bounds (checked), so the offset stays in the mapping.
        self.holds(offset, len)
            .then(|| unsafe { self.ptr.as_ptr().add(offset).cast_const() })
    }

    /// The bytes at `offset..offset + len` (`None` outside the buffer).
    ///
    /// # Safety
    /// No process may write those bytes while the slice lives.
    pub unsafe fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        // SAFETY: in bounds (checked); the caller rules out writers.
        self.holds(offset, len)
            .then(|| unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes at `offset..offset + len`, to write into (`None` outside
    /// the buffer).
    ///
    /// # Safety
    /// No other process may touch those bytes while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: usize, len: usize) -> Option<&mut [u8]> {
        // SAFETY: in bounds (checked); the caller rules out other users.
        self.holds(offset, len)
            .then(|| unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_see_the_same_bytes() {
        let (server, fd) = SharedBuffer::create(c"amped-test", 8192).expect("create");
        let helper = SharedBuffer::map(&fd, 8192).expect("map");
        drop(fd);
        // SAFETY: this test is the only user of the buffer.
        unsafe {
            helper
                .slice_mut(4096, 5)
                .expect("in bounds")
                .copy_from_slice(b"hello");
            assert_eq!(server.slice(4096, 5), Some(&b"hello"[..]));
            assert!(server.slice(8190, 5).is_none());
            assert!(helper.slice_mut(usize::MAX, 2).is_none());
        }
        assert!(server.span(8190, 2).is_some() && server.span(8190, 3).is_none());
    }

    #[test]
    fn the_buffer_cannot_be_resized() {
        let (_buffer, fd) = SharedBuffer::create(c"amped-test", 8192).expect("create");
        for size in [4096, 16384, 0] {
            // SAFETY: ftruncate on a descriptor this test owns.
            let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), size) };
            assert_eq!(rc, -1, "ftruncate to {size} must fail on a sealed buffer");
            let err = io::Error::last_os_error().raw_os_error();
            assert_eq!(err, Some(libc::EPERM), "ftruncate to {size}");
        }
        // SAFETY: fcntl on a descriptor this test owns.
        let unseal = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_WRITE) };
        assert_eq!(unseal, -1, "no more seals can be added or changed");
    }
}

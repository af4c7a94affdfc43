//! Sending and receiving bytes with descriptors attached (`SCM_RIGHTS`).
//!
//! A descriptor is attached to the first bytes of its frame. Sockets that
//! may carry descriptors are read only through [`recv_with_fds`]: a plain
//! `read` would silently drop them.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::Error;

/// The most descriptors one `recvmsg` accepts.
pub const MAX_FDS_PER_READ: usize = 8;

/// Sends as much of `bytes` as the socket takes, with `fds` attached.
/// Returns the number of bytes sent (at least one on success).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads into `buf` and appends every received descriptor to `fds`
/// (close-on-exec). Returns the number of bytes read; 0 means end-of-file.
/// Descriptors that could not all be received (MSG_CTRUNC) are an error.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> Result<usize, Error> {
    match recv_with_fds_or_lost(sock, buf, fds, nonblocking)? {
        (_, true) => Err(Error::ControlTruncated),
        (bytes, false) => Ok(bytes),
    }
}

/// Like [`recv_with_fds`], but when the descriptors sent with these bytes
/// could not all be received (MSG_CTRUNC: this process is at its
/// descriptor limit, the kernel installs what fits) the bytes are still
/// returned, with `true`: the descriptors that did arrive are closed, and
/// the caller decides what a message without its descriptors means. A
/// stream socket never joins bytes sent with descriptors to other bytes
/// sent with descriptors in one read, so the loss is one message's.
pub fn recv_with_fds_or_lost(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> Result<(usize, bool), Error> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_READ]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Ok(msg) => break msg,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::Io(e.into())),
        }
    };
    let bytes = msg.bytes;
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        // nix refuses to iterate a truncated control buffer (ENOBUFS), but
        // the descriptors that did fit were installed in our table all the
        // same: close them, or they leak.
        close_control_fds(&space);
        return Ok((bytes, true));
    }
    for cmsg in msg.cmsgs().map_err(|e| Error::Io(e.into()))? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: the kernel just installed this descriptor for us;
                // nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    Ok((bytes, false))
}

/// Closes every `SCM_RIGHTS` descriptor in a control buffer filled by
/// `recvmsg`. The buffer must have been zeroed before the call, so that
/// the first header the kernel did not write has a length of zero.
fn close_control_fds(control: &[u8]) {
    let header_len = std::mem::size_of::<libc::cmsghdr>();
    // SAFETY: CMSG_LEN only computes a length.
    let data_offset = unsafe { libc::CMSG_LEN(0) } as usize;
    let mut offset = 0;
    while offset + header_len <= control.len() {
        // SAFETY: in bounds (checked above); read_unaligned because a
        // Vec<u8> promises no alignment.
        let header: libc::cmsghdr =
            unsafe { std::ptr::read_unaligned(control[offset..].as_ptr().cast::<libc::cmsghdr>()) };
        let len = header.cmsg_len as usize;
        if len < data_offset || len > control.len() - offset {
            break;
        }
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            let data = &control[offset + data_offset..offset + len];
            for chunk in data.chunks_exact(std::mem::size_of::<RawFd>()) {
                let mut raw = [0u8; std::mem::size_of::<RawFd>()];
                raw.copy_from_slice(chunk);
                let raw = RawFd::from_ne_bytes(raw);
                if raw >= 0 {
                    // SAFETY: the kernel installed this descriptor for us
                    // in this very call; nothing else knows of it.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        // SAFETY: CMSG_SPACE only computes a length.
        offset += unsafe { libc::CMSG_SPACE((len - data_offset) as u32) } as usize;
    }
}
